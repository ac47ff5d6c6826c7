// Command kube-network-policies runs the NetworkPolicy enforcer of sigs.k8s.io/kube-network-policies
// (its pkg/networkpolicy controller, unchanged) as a host process of the test bed.
//
// Upstream's own main (cmd/main.go of v0.8.0) takes its API credentials only from rest.InClusterConfig,
// i.e. from a ServiceAccount token mounted at a fixed path inside a pod; the test bed runs its components
// as host processes with a kubeconfig, so this wrapper builds the same controller from --kubeconfig.
// It also stops on SIGTERM (upstream: SIGINT only), so the controller's deferred cleanup removes its
// nftables table, and --cleanup removes a table a killed run left behind (the package programs nftables
// over netlink, github.com/google/nftables: the host needs no `nft` binary).
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/google/nftables"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	"sigs.k8s.io/kube-network-policies/pkg/networkpolicy"
)

// tableName is the controller's default (networkpolicy.Config.Defaults); --cleanup deletes it.
const tableName = "kube-network-policies"

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the cluster (required)")
	nodeName := flag.String("hostname-override", "", "the Node this enforcer serves (required)")
	queueID := flag.Int("nfqueue-id", 100, "the nfqueue the first packet of each connection goes to")
	metricsAddress := flag.String("metrics-bind-address", "127.0.0.1:19080", "where /metrics is served")
	cleanup := flag.Bool("cleanup", false, "delete the nftables table a previous run left, then exit")
	klog.InitFlags(nil)
	flag.Parse()
	if *cleanup {
		if err := deleteTable(); err != nil {
			fmt.Fprintf(os.Stderr, "cleanup: %v\n", err)
			os.Exit(1)
		}
		return
	}
	if *kubeconfig == "" || *nodeName == "" {
		fmt.Fprintln(os.Stderr, "--kubeconfig and --hostname-override are required")
		os.Exit(2)
	}
	os.Exit(run(*kubeconfig, *nodeName, *queueID, *metricsAddress))
}

func run(kubeconfig, nodeName string, queueID int, metricsAddress string) int {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	config, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		klog.ErrorS(err, "reading the kubeconfig", "path", kubeconfig)
		return 1
	}
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		klog.ErrorS(err, "creating the API client")
		return 1
	}
	factory := informers.NewSharedInformerFactory(client, 0)
	controller, err := networkpolicy.NewController(
		client,
		factory.Networking().V1().NetworkPolicies(),
		factory.Core().V1().Namespaces(),
		factory.Core().V1().Pods(),
		nil, nil, nil, nil, // no (Baseline)AdminNetworkPolicy: only the networking.k8s.io/v1 API
		networkpolicy.Config{
			QueueID:             queueID,
			NodeName:            nodeName,
			NetfilterBug1766Fix: true, // upstream's default
			// FailOpen false: a packet the enforcer cannot judge is dropped, as upstream by default.
		},
	)
	if err != nil {
		klog.ErrorS(err, "creating the network policy controller")
		return 1
	}
	http.Handle("/metrics", promhttp.Handler())
	go func() {
		if err := http.ListenAndServe(metricsAddress, nil); err != nil {
			klog.ErrorS(err, "serving /metrics", "address", metricsAddress)
		}
	}()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := controller.Run(ctx); err != nil {
			klog.ErrorS(err, "network policy controller stopped")
			cancel()
		}
	}()
	factory.Start(ctx.Done())
	<-ctx.Done()
	// Run's deferred cleanup deletes the nftables table; give it the moment upstream gives it.
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
	return 0
}

func deleteTable() error {
	conn, err := nftables.New()
	if err != nil {
		return err
	}
	tables, err := conn.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return err
	}
	for _, table := range tables {
		if table.Name == tableName {
			conn.DelTable(table)
			return conn.Flush()
		}
	}
	return nil
}
