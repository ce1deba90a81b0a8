package bootstrap

import (
	"strings"
	"testing"

	"github.com/walship/walship/instance/pgconf"
)

func good() Options {
	return Options{
		PGData: "/var/lib/postgresql/data/pgdata",
		BinDir: "/usr/lib/postgresql/15/bin",
		InitDB: InitDB{Database: "app", Owner: "app", Encoding: "UTF8", LocaleCollate: "C", LocaleCType: "en_US.UTF-8"},
		Instance: pgconf.Instance{Cluster: "c", Name: "c-1", Primary: true, Port: 5432, SocketDir: "/run/postgresql",
			TLS: pgconf.TLSFiles{ServerCert: "/tls/s.crt", ServerKey: "/tls/s.key", ClientCA: "/tls/ca.crt"}},
	}
}

func TestValidate(t *testing.T) {
	if err := good().Validate(); err != nil {
		t.Fatalf("good options refused: %v", err)
	}
	for _, seg := range []int{0, 1, 2, 16, 64, 1024} {
		o := good()
		o.InitDB.WALSegSizeMB = seg
		if err := o.Validate(); err != nil {
			t.Errorf("wal-segsize %d refused: %v", seg, err)
		}
	}
	cases := map[string]struct {
		change func(*Options)
		want   string
	}{
		"encoding with a quote": {func(o *Options) { o.InitDB.Encoding = "UTF8'; drop" }, "encoding"},
		"empty encoding":        {func(o *Options) { o.InitDB.Encoding = "" }, "encoding"},
		"locale with a space":   {func(o *Options) { o.InitDB.LocaleCType = "en US" }, "localeCType"},
		"segsize 3":             {func(o *Options) { o.InitDB.WALSegSizeMB = 3 }, "power of two"},
		"segsize 2048":          {func(o *Options) { o.InitDB.WALSegSizeMB = 2048 }, "power of two"},
		"segsize -1":            {func(o *Options) { o.InitDB.WALSegSizeMB = -1 }, "power of two"},
		"no database":           {func(o *Options) { o.InitDB.Database = "" }, "database"},
		"owner postgres":        {func(o *Options) { o.InitDB.Owner = "postgres" }, "reserves"},
		"relative pgdata":       {func(o *Options) { o.PGData = "data" }, "absolute"},
		"empty post-init SQL":   {func(o *Options) { o.InitDB.PostInitSQL = []string{" "} }, "empty"},
		"standby":               {func(o *Options) { o.Instance.Primary = false }, "primary"},
		"no TLS":                {func(o *Options) { o.Instance.TLS.ServerKey = "" }, "server key"},
		"controlled parameter":  {func(o *Options) { o.Instance.Parameters = map[string]string{"port": "1"} }, "managed by walship"},
	}
	for name, c := range cases {
		o := good()
		c.change(&o)
		err := o.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error with %q", name, err, c.want)
		}
	}
}

func TestQuote(t *testing.T) {
	if got := ident(`a"b`); got != `"a""b"` {
		t.Errorf("ident: %s", got)
	}
	if got := literal(`it's`); got != `'it''s'` {
		t.Errorf("literal: %s", got)
	}
}
