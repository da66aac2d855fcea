"""Storage limitation (Art. 5(1)(e), R-RET-01): one table of how long each store keeps
what it holds (``policies``), and the sweeps the retention pass runs over it (``stores``).
The pass itself is the use case privacy_hub/usecases/retention.py."""
