// Command controlplane runs one component of a real Kubernetes control plane,
// built from upstream's own Go modules, for the DownloadJobs embedded cluster.
//
// One binary, one subcommand per component, and each component in a process of
// its own: kube-apiserver and kube-controller-manager register global flags and
// metrics that collide when two of them share a process.
//
//	controlplane etcd --data-dir DIR --listen-client-url URL --listen-peer-url URL
//	controlplane kube-apiserver [kube-apiserver flags]
//	controlplane kube-controller-manager [kube-controller-manager flags]
//	controlplane service-account-key FILE
package main

import (
	"fmt"
	"os"
	"time"
	_ "time/tzdata" // for time zone support in CronJob, as upstream's mains do

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"          // JSON log format, as upstream's mains do
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client-go metrics, as upstream's mains do
	_ "k8s.io/component-base/metrics/prometheus/version"  // version metric, as upstream's mains do
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	"k8s.io/kubernetes/pkg/controller/job"
)

const usage = "usage: controlplane etcd|kube-apiserver|kube-controller-manager|service-account-key [flags]"

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	component, args := os.Args[1], os.Args[2:]
	switch component {
	case "etcd":
		os.Exit(runEtcd(args))
	case "kube-apiserver":
		command := apiserver.NewAPIServerCommand()
		command.SetArgs(args)
		os.Exit(cli.Run(command))
	case "kube-controller-manager":
		if err := shortenJobBackOff(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		command := controllermanager.NewControllerManagerCommand()
		command.SetArgs(args)
		os.Exit(cli.Run(command))
	case "service-account-key":
		os.Exit(writeServiceAccountKey(args))
	default:
		fmt.Fprintf(os.Stderr, "unknown component %q\n%s\n", component, usage)
		os.Exit(2)
	}
}

// shortenJobBackOff applies $CONTROLPLANE_JOB_POD_FAILURE_BACKOFF to the Job
// controller's pod-failure back-off (10 s, doubling, by default).
//
// Upstream exports the two variables for its own tests; the end-to-end tests use
// them the same way, so that a retried worker starts in a second instead of ten.
// Unset, the controller keeps upstream's values.
func shortenJobBackOff() error {
	value := os.Getenv("CONTROLPLANE_JOB_POD_FAILURE_BACKOFF")
	if value == "" {
		return nil
	}
	base, err := time.ParseDuration(value)
	if err != nil || base <= 0 {
		return fmt.Errorf("CONTROLPLANE_JOB_POD_FAILURE_BACKOFF=%q is not a positive duration", value)
	}
	job.DefaultJobPodFailureBackOff = base
	job.MaxJobPodFailureBackOff = 60 * base
	return nil
}
