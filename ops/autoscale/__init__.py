"""The autoscaler: `python -m ops.autoscale` starts and drains the stage workers of one machine.

For each stage of the mode, every round:

    desired = clamp(ceil((lag + pending) / target_per_worker), min_workers, max_workers)

read from the stage's consumer group (XINFO GROUPS; `lag` computed as XLEN - pending when Redis
does not report it). It scales up at once and scales down only once the desired count has stayed
lower for the whole cool-down. It alone owns the workers in this mode (ops/Procfile.autoscale):
it starts them (`AUTOSCALE_COMMAND`), names them `<stage>.<n>` with the lowest free n
(CONSUMER_NAME), restarts any that die under the same name, and stops them with SIGTERM so they
drain (QUEUE_GRACE_S). Consumers with no pending entries and no heartbeat for ten leases are
deleted from their group. Decisions are logged with their inputs and exported as Prometheus
metrics (`triptych_autoscaler_*`). With `AUTOSCALE_SPAWN=false` it starts nothing and only
watches, exports and forgets dead consumers: the mode for Kubernetes, where KEDA scales.

Settings (environment variables; the queue runtime's own, REDIS_URL, KEY_PREFIX, QUEUE_LEASE_S,
QUEUE_GRACE_S ..., are read too and passed on to the workers):

| variable | default | meaning |
|---|---|---|
| `MODE` | `e-p-d` | deployment mode (`agg`, `e-pd`, `e-p-d`); its stages are scaled |
| `AUTOSCALE_STAGES` | the mode's | comma-separated stages to scale instead |
| `AUTOSCALE_MIN_WORKERS` | `1` | fewest workers per stage (0 fails /ready while idle) |
| `AUTOSCALE_MAX_WORKERS` | `4` | most workers per stage |
| `AUTOSCALE_TARGET_PER_WORKER` | `8` | backlog (lag + pending) one worker should carry |
| `AUTOSCALE_LIMITS` | none | per-stage overrides `stage=min:max[:target]`, comma-separated |
| `AUTOSCALE_DEVICES` | none | workers' `DEVICE` per stage, `stage=device[+device...]`, comma-separated |
| `AUTOSCALE_COOLDOWN_S` | `60` | how long the desired count stays lower before workers drain |
| `AUTOSCALE_INTERVAL_S` | `1` | seconds between two rounds |
| `AUTOSCALE_COMMAND` | `python -m workers.{stage}` | worker command (`python`: this interpreter) |
| `AUTOSCALE_SPAWN` | `true` | `false`: start nothing; watch, export, forget dead consumers |
| `AUTOSCALE_FORGET_AFTER_LEASES` | `10` | leases without heartbeat or pending entries before deletion |
| `AUTOSCALE_METRICS_HOST` | `127.0.0.1` | address of `/metrics` (`0.0.0.0`: scraped from elsewhere) |
| `AUTOSCALE_METRICS_PORT` | `9400` | port of `/metrics`; 0: none |
| `AUTOSCALE_WORKER_METRICS_PORT` | `0` | if set: `<stage>.<n>` (i-th stage) gets this + 100 i + n - 1 |

A draining worker still running QUEUE_GRACE_S + 10 s after its SIGTERM is killed; its jobs stay
pending and are reclaimed by the others after the lease.

Devices go by name, so they are stable: with `AUTOSCALE_DEVICES=encode=cuda:0,decode=cuda:1+cuda:2`,
the encode workers run on cuda:0, decode.1 and decode.3 on cuda:1, decode.2 on cuda:2; a stage the
list does not name keeps the autoscaler's own `DEVICE`. A worker keeps its device for its life, a
restarted one (same name) gets it again, and a name freed by a drained worker is taken, with its
device, by the next worker the stage starts. While a worker drains, its name is taken, so the next
one may double up on a device for that while.
"""
