"""KEDA's external scaler (external-push mode): the gRPC service, its wire encoding (``protowire``, pure),
and the demand of the gateway's peer replicas it sums."""
