package main

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"
)

// kubeBinary is the program that holds walship's Kubernetes code. It is a
// separate binary because linking client-go and controller-runtime into
// walship made every start of `walship wal-push` (PostgreSQL's
// archive_command, once per WAL segment) cost about three times the CPU:
// 30 → 99 ms measured with `perf stat -r 20 walship --version`.
const kubeBinary = "walship-k8s"

// kubeCmd is a walship command that runs in walship-k8s, found next to
// walship (or on PATH): `walship operator ...` is `walship-k8s operator ...`.
func kubeCmd(name, short string) *cobra.Command {
	return &cobra.Command{
		Use:                name,
		Short:              short,
		DisableFlagParsing: true, // walship-k8s parses them, --help included
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := findKubeBinary()
			if err != nil {
				return err
			}
			argv := append([]string{kubeBinary, name}, args...)
			if err := syscall.Exec(path, argv, os.Environ()); err != nil {
				return fmt.Errorf("running %s: %w", path, err)
			}
			return nil
		},
	}
}

func findKubeBinary() (string, error) {
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), kubeBinary)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
		p := filepath.Join(dir, kubeBinary)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s is not installed next to walship or on PATH: the Kubernetes commands live in that binary (make build builds both into bin/)", kubeBinary)
}
