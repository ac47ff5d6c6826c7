"""The built-in autoscaler (leader only): ``autoscaler`` runs the passes and sets scales, ``coldwatch``
wakes at once on a cold request, ``settle`` tells drain sidecars after an eviction (all I/O); ``scaling``
(replicas from demand) and ``windows`` (scheduled warm windows) are pure."""
