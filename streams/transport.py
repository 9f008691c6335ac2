"""Faust's aiokafka transport with the fetch wait taken from the settings.

faust-streaming 0.15.3 hard-codes ``fetch_max_wait_ms=1500`` when it creates the worker's
consumer. Real Kafka answers a fetch as soon as data is there, so the constant only costs idle
polling; the embedded broker holds every fetch until the wait expires, so there it adds up to
1.5 s to every event's latency and caps the fetch rate. The smallest clean override is to set the
consumer's fetch wait right after Faust built it (before it starts), through subclasses of the
driver's classes installed as ``app.transport``.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.transport.drivers import aiokafka as driver


def install(app: faust.App, fetch_max_wait_ms: int) -> None:
    """Give ``app`` a Kafka transport whose worker consumer waits ``fetch_max_wait_ms`` at most.

    Must run before anything touches ``app.transport`` (``app.topic`` does)."""

    class ConsumerThread(driver.AIOKafkaConsumerThread):
        def _create_worker_consumer(self, transport: Any) -> Any:
            consumer = super()._create_worker_consumer(transport)
            # aiokafka reads this attribute when start() builds its fetcher.
            consumer._fetch_max_wait_ms = fetch_max_wait_ms
            return consumer

    class Consumer(driver.Consumer):
        def _new_consumer_thread(self) -> ConsumerThread:
            return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    class Transport(driver.Transport):
        pass

    Transport.Consumer = Consumer
    app.transport = Transport(app.conf.broker_consumer, app)
