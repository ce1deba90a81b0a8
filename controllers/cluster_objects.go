package controllers

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	apiv1 "github.com/walship/walship/api/v1"
)

// The objects of a Cluster's instances and Services, as the Cluster
// reconciler wants them. Every builder here is pure and deterministic (maps
// rendered sorted, slices in a fixed order), so a reconcile can compare what
// it builds with what exists.
//
// Instance n of Cluster c is a Pod and a PersistentVolumeClaim, both named
// <c>-<n> (InstanceName), controlled by the Cluster. Every object carries
// ClusterLabel; the instance's Pod and PVC also carry InstanceNameLabel, and
// the Pod carries InstanceRoleLabel, which the reconciler keeps equal to the
// instance's real role and which the Services select on:
//
//	<c>-rw  ClusterLabel=c, InstanceRoleLabel=primary
//	<c>-ro  ClusterLabel=c, InstanceRoleLabel=replica
//	<c>-r   ClusterLabel=c
//
// Services route only to Ready pods (publishNotReadyAddresses is false), so
// -ro reaches the ready standbys and -r every ready instance.

// Labels of a Cluster's instances (ClusterLabel is with the ScheduledBackup's).
const (
	// InstanceNameLabel is the instance's name, <cluster>-<serial>, on its
	// Pod and PVC.
	InstanceNameLabel = "postgresql.walship.io/instanceName"
	// InstanceRoleLabel is the instance's role, RolePrimary or RoleReplica,
	// on its Pod; the -rw and -ro Services select on it.
	InstanceRoleLabel = "postgresql.walship.io/instanceRole"
)

// Values of InstanceRoleLabel (and of status.instancesStatus[].role).
const (
	RolePrimary = "primary"
	RoleReplica = "replica"
)

// DefaultImage is the instances' image when spec.imageName is empty.
const DefaultImage = "ghcr.io/walship/walship:dev"

// Paths and settings of an instance's container.
const (
	// PostgresContainerName is the container running the instance manager.
	PostgresContainerName = "postgres"
	// PostgresPortName names port 5432 on the Pod and the Services.
	PostgresPortName = "postgres"
	// DataVolumeName is the Pod's volume for the instance's PVC.
	DataVolumeName = "pgdata"
	// DataMountPath is where the PVC is mounted.
	DataMountPath = "/var/lib/postgresql/data"
	// PGDataPath is the data directory, a folder of the volume (so the
	// volume's lost+found does not upset initdb).
	PGDataPath = DataMountPath + "/pgdata"
	// SocketDir is PostgreSQL's Unix socket directory.
	SocketDir = "/run/postgresql"
	// PostgresUID is the postgres user and group of the image.
	PostgresUID = 26
	// TerminationGracePeriod is the Pod's grace period, in seconds: the
	// instance manager's fast shutdown must finish within it.
	TerminationGracePeriod = 30
)

// Environment of an instance's container, read by `walship instance run`.
const (
	EnvPGData       = "PGDATA"
	EnvCluster      = "WALSHIP_CLUSTER"
	EnvInstance     = "WALSHIP_INSTANCE"
	EnvPGParameters = "WALSHIP_PG_PARAMETERS" // JSON object of spec.postgresql.parameters
	EnvPGHBA        = "WALSHIP_PG_HBA"        // JSON array of spec.postgresql.pg_hba
)

// ROServiceName is the Service that reaches the ready standbys.
func ROServiceName(c *apiv1.Cluster) string { return c.Name + "-ro" }

// RServiceName is the Service that reaches every ready instance.
func RServiceName(c *apiv1.Cluster) string { return c.Name + "-r" }

// InstanceName is the name of instance serial (from 1) of cluster: the name
// of its Pod and of its PVC.
func InstanceName(cluster string, serial int) string {
	return cluster + "-" + strconv.Itoa(serial)
}

// ClusterImage is spec.imageName, or DefaultImage.
func ClusterImage(c *apiv1.Cluster) string {
	if c.Spec.ImageName != "" {
		return c.Spec.ImageName
	}
	return DefaultImage
}

// ownerRef makes the Cluster the controller of an object.
func ownerRef(c *apiv1.Cluster) []metav1.OwnerReference {
	return []metav1.OwnerReference{*metav1.NewControllerRef(c, apiv1.GroupVersion.WithKind("Cluster"))}
}

// instanceLabels are the labels of instance name's PVC (and, with its role,
// of its Pod).
func instanceLabels(c *apiv1.Cluster, name string) map[string]string {
	return map[string]string{ClusterLabel: c.Name, InstanceNameLabel: name}
}

// Services returns the Cluster's Services -rw, -ro and -r, in that order.
func Services(c *apiv1.Cluster) []*corev1.Service {
	svc := func(name string, selector map[string]string) *corev1.Service {
		return &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{
				Namespace:       c.Namespace,
				Name:            name,
				Labels:          map[string]string{ClusterLabel: c.Name},
				OwnerReferences: ownerRef(c),
			},
			Spec: corev1.ServiceSpec{
				Type:     corev1.ServiceTypeClusterIP,
				Selector: selector,
				Ports: []corev1.ServicePort{{
					Name:       PostgresPortName,
					Protocol:   corev1.ProtocolTCP,
					Port:       PostgresPort,
					TargetPort: intstr.FromString(PostgresPortName),
				}},
				PublishNotReadyAddresses: false,
			},
		}
	}
	return []*corev1.Service{
		svc(RWServiceName(c), map[string]string{ClusterLabel: c.Name, InstanceRoleLabel: RolePrimary}),
		svc(ROServiceName(c), map[string]string{ClusterLabel: c.Name, InstanceRoleLabel: RoleReplica}),
		svc(RServiceName(c), map[string]string{ClusterLabel: c.Name}),
	}
}

// PVC returns the PersistentVolumeClaim of instance serial: spec.storage's
// size and class, ReadWriteOnce. A size that does not parse is an error
// (admission refuses it, so only an old object could have one).
func PVC(c *apiv1.Cluster, serial int) (*corev1.PersistentVolumeClaim, error) {
	size, err := resource.ParseQuantity(c.Spec.Storage.Size)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: spec.storage.size %q: %w", c.Name, c.Spec.Storage.Size, err)
	}
	name := InstanceName(c.Name, serial)
	var class *string
	if sc := c.Spec.Storage.StorageClass; sc != nil {
		class = ptr.To(*sc)
	}
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:       c.Namespace,
			Name:            name,
			Labels:          instanceLabels(c, name),
			OwnerReferences: ownerRef(c),
		},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: class,
			Resources: corev1.VolumeResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceStorage: size},
			},
		},
	}, nil
}

// Pod returns the Pod of instance serial in role (RolePrimary or
// RoleReplica), running `walship instance run` in image (ClusterImage when
// empty) on the instance's PVC.
func Pod(c *apiv1.Cluster, serial int, role, image string) (*corev1.Pod, error) {
	if role != RolePrimary && role != RoleReplica {
		return nil, fmt.Errorf("instance role %q: want %s or %s", role, RolePrimary, RoleReplica)
	}
	if image == "" {
		image = ClusterImage(c)
	}
	name := InstanceName(c.Name, serial)
	env, err := instanceEnv(c, name)
	if err != nil {
		return nil, err
	}
	labels := instanceLabels(c, name)
	labels[InstanceRoleLabel] = role
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:       c.Namespace,
			Name:            name,
			Labels:          labels,
			OwnerReferences: ownerRef(c),
		},
		Spec: corev1.PodSpec{
			Hostname:                      name,
			RestartPolicy:                 corev1.RestartPolicyAlways,
			TerminationGracePeriodSeconds: ptr.To[int64](TerminationGracePeriod),
			SecurityContext: &corev1.PodSecurityContext{
				RunAsUser:    ptr.To[int64](PostgresUID),
				RunAsGroup:   ptr.To[int64](PostgresUID),
				FSGroup:      ptr.To[int64](PostgresUID),
				RunAsNonRoot: ptr.To(true),
			},
			Affinity: defaultAffinity(c),
			Volumes: []corev1.Volume{{
				Name: DataVolumeName,
				VolumeSource: corev1.VolumeSource{
					PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: name},
				},
			}},
			Containers: []corev1.Container{{
				Name:            PostgresContainerName,
				Image:           image,
				ImagePullPolicy: corev1.PullIfNotPresent,
				Command:         []string{"walship", "instance", "run"},
				Env:             env,
				Ports: []corev1.ContainerPort{{
					Name:          PostgresPortName,
					ContainerPort: PostgresPort,
					Protocol:      corev1.ProtocolTCP,
				}},
				Resources:    *c.Spec.Resources.DeepCopy(),
				VolumeMounts: []corev1.VolumeMount{{Name: DataVolumeName, MountPath: DataMountPath}},
				ReadinessProbe: &corev1.Probe{
					ProbeHandler: corev1.ProbeHandler{
						Exec: &corev1.ExecAction{Command: []string{"pg_isready", "-q", "-h", SocketDir}},
					},
					PeriodSeconds:    10,
					TimeoutSeconds:   5,
					SuccessThreshold: 1,
					FailureThreshold: 3,
				},
				TerminationMessagePath:   corev1.TerminationMessagePathDefault,
				TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
			}},
		},
	}, nil
}

// instanceEnv is the container's environment, sorted by name.
func instanceEnv(c *apiv1.Cluster, instance string) ([]corev1.EnvVar, error) {
	params := c.Spec.PostgresQL.Parameters
	if params == nil {
		params = map[string]string{}
	}
	// encoding/json writes map keys sorted: deterministic.
	pj, err := json.Marshal(params)
	if err != nil {
		return nil, fmt.Errorf("encoding postgresql.parameters: %w", err)
	}
	hba := c.Spec.PostgresQL.PgHBA
	if hba == nil {
		hba = []string{}
	}
	hj, err := json.Marshal(hba)
	if err != nil {
		return nil, fmt.Errorf("encoding postgresql.pg_hba: %w", err)
	}
	env := []corev1.EnvVar{
		{Name: EnvPGData, Value: PGDataPath},
		{Name: EnvCluster, Value: c.Name},
		{Name: EnvInstance, Value: instance},
		{Name: EnvPGParameters, Value: string(pj)},
		{Name: EnvPGHBA, Value: string(hj)},
	}
	sort.Slice(env, func(i, j int) bool { return env[i].Name < env[j].Name })
	return env, nil
}

// defaultAffinity spreads a Cluster's instances over the nodes, as CNPG does
// by default: a preferred (weight 100) anti-affinity on kubernetes.io/hostname
// to the other pods of the Cluster. The API has no affinity field yet; when
// it gets one, the user's settings replace this.
func defaultAffinity(c *apiv1.Cluster) *corev1.Affinity {
	return &corev1.Affinity{
		PodAntiAffinity: &corev1.PodAntiAffinity{
			PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
				Weight: 100,
				PodAffinityTerm: corev1.PodAffinityTerm{
					TopologyKey: corev1.LabelHostname,
					LabelSelector: &metav1.LabelSelector{
						MatchExpressions: []metav1.LabelSelectorRequirement{{
							Key:      ClusterLabel,
							Operator: metav1.LabelSelectorOpIn,
							Values:   []string{c.Name},
						}},
					},
				},
			}},
		},
	}
}
