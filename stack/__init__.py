"""The stack harness: simulated AMS, exporter, real Prometheus and Alertmanager, remediator.

Used by the demo (demo/), the end-to-end tests (tests/e2e/), the rule and dashboard
tests (tests/rules/, tests/grafana/) and the benchmarks (bench/); its own tests are in
tests/stack/. Everything listens on 127.0.0.1 and keeps its data and logs in a
temporary folder; every process is stopped on exit or failure, and every wait is bounded.

    runner.py      Stack, StackOptions: the whole pipeline, one call
    services.py    start one component (Prometheus, Alertmanager, exporter, remediator)
    process.py     child processes: own process group, readiness, bounded stop
    binaries.py    where the Prometheus and Alertmanager binaries are
    ports.py       free loopback ports; loopback.py, sink.py: in-process HTTP servers
    configs.py     generated configs; timing.py: accelerated and production intervals
    waiting.py     bounded waits; api.py: Prometheus, Alertmanager, /metrics, audit log
    conference.py  conference steps and checks; writes.py: which streams a write touched

    from stack.runner import Stack, StackOptions
    with Stack(StackOptions(ams_version="3.0.0")) as stack:
        stack.sim.create_room("WebRTCAppEE", "room1")   # the simulator runs in-process
        ...
        stack.sim.writes, stack.audit(), stack.prometheus_url, stack.alertmanager_url

What is taken as it ships and what is rewritten:
- Prometheus loads the rule files of rules/ unchanged; its prometheus.yml is generated
  (scrape jobs `antmedia` and `antmedia-remediator`, like rules/prometheus.example.yml)
  with the timing profile's scrape and evaluation intervals (accelerated 1 s,
  production 10 s). An HA pair gets external label replica=a/b and drops it from alerts.
- Alertmanager runs rules/alertmanager.example.yml with only the webhook URLs (the
  remediator's, and a local sink for any other webhook) and the bearer token path
  rewritten. Its timers stay as shipped in every profile: the remediation route
  already notifies 1 s after an alert arrives and retries every 10 s.
- The exporter and the remediator read one generated YAML file; the remediator enforces
  (dry_run: false), with a bearer token file and the Alertmanager URL for its silence check.
"""
