"""The device agent: on-disk outbox, MQTT link, sensor sources and ``forewarn edge``."""
