"""Telemetry storage: the embedded history the API reads, and an InfluxDB mirror for dashboards."""

# The adapters (cloud.store.embedded, cloud.store.influx) are not imported here, so that
# importing the ports imports neither sqlite3 nor influxdb-client.

from cloud.store.ports import Series, TelemetryReader, TelemetryWriter, WriterStats

__all__ = ["Series", "TelemetryReader", "TelemetryWriter", "WriterStats"]
