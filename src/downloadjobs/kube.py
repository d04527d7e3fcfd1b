"""Loading the Kubernetes client configuration: in-cluster first, then kubeconfig."""

import os

import kubernetes


def load_config() -> None:
    """
    Configure the ``kubernetes`` client the way kubectl would find the cluster.

    Inside a pod the service-account token is used; elsewhere ``$KUBECONFIG``
    or ``~/.kube/config``. Nothing here knows whether the server is real.
    """
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        kubernetes.config.load_incluster_config()
    else:
        kubernetes.config.load_kube_config()
    # Threads share one connection pool; the client's default is cores x 5.
    config = kubernetes.client.Configuration.get_default_copy()
    config.connection_pool_maxsize = max(config.connection_pool_maxsize or 0, 32)
    kubernetes.client.Configuration.set_default(config)
