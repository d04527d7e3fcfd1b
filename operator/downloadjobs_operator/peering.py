"""
The peering object that operator replicas share, created when missing.

kopf keeps each replica's keep-alive in the status of one ``KopfPeering`` (or,
cluster-wide, ``ClusterKopfPeering``) object, but never creates it: without it a
replica would run unpaused beside the others. Every replica creates it before
kopf starts; the second one's 409 is the expected answer.
"""

import kubernetes
from kubernetes.client.exceptions import ApiException

GROUP, VERSION = "kopf.dev", "v1"


def ensure_peering(name: str, namespace: str | None) -> bool:
    """Create the peering object (``namespace=None``: cluster-wide); True if created."""
    api = kubernetes.client.CustomObjectsApi()
    kind = "ClusterKopfPeering" if namespace is None else "KopfPeering"
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind, "metadata": {"name": name}}
    try:
        if namespace is None:
            api.create_cluster_custom_object(GROUP, VERSION, "clusterkopfpeerings", body)
        else:
            api.create_namespaced_custom_object(GROUP, VERSION, namespace, "kopfpeerings", body)
    except ApiException as exc:
        if exc.status == 409:
            return False
        raise
    return True
