"""Operations' view of the server: Prometheus metrics (metrics.py) and OpenTelemetry traces
(tracing.py, imported only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set)."""
