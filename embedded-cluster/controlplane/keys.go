package main

import (
	"fmt"
	"os"

	"k8s.io/client-go/util/keyutil"
)

// writeServiceAccountKey writes the key that signs service-account tokens,
// unless the file exists: a restarted control plane must keep accepting the
// tokens it issued before.
//
// kube-apiserver signs with it (--service-account-signing-key-file) and verifies
// with it (--service-account-key-file); kube-controller-manager signs legacy
// token Secrets with it. client-go's keyutil makes the same ECDSA P-256 key
// kubeadm would.
func writeServiceAccountKey(args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: controlplane service-account-key FILE")
		return 2
	}
	path := args[0]
	if _, err := os.Stat(path); err == nil {
		return 0
	}
	pem, err := keyutil.MakeEllipticPrivateKeyPEM()
	if err != nil {
		fmt.Fprintf(os.Stderr, "service-account-key: %v\n", err)
		return 1
	}
	if err := keyutil.WriteKey(path, pem); err != nil {
		fmt.Fprintf(os.Stderr, "service-account-key: %v\n", err)
		return 1
	}
	return 0
}
