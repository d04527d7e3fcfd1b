"""Loading the Kubernetes client configuration: in-cluster first, then kubeconfig."""

import os
from typing import Any

import kubernetes


def load_config(connections: int = 32) -> None:
    """
    Configure the ``kubernetes`` client the way kubectl would find the cluster.

    Inside a pod the service-account token is used; elsewhere ``$KUBECONFIG``
    or ``~/.kube/config``. Nothing here knows whether the server is real.
    """
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        kubernetes.config.load_incluster_config()
    else:
        kubernetes.config.load_kube_config()
    # Threads share one connection pool; the client's default is cores x 5. A request
    # beyond ``connections`` at once gets a connection that is closed after it (and a
    # TLS handshake each time), so it is as many as the caller has threads.
    config = kubernetes.client.Configuration.get_default_copy()
    config.connection_pool_maxsize = max(config.connection_pool_maxsize or 0, connections)
    kubernetes.client.Configuration.set_default(config)


def read_through(response: Any) -> None:
    """
    Read an answer nobody needs (a ``_preload_content=False`` call) to its end: urllib3
    reuses a connection only once its answer is read, and an unread one left each such
    request a new TLS handshake (the top cost of the operator and node agent under load).
    """
    response.drain_conn()
    response.release_conn()
