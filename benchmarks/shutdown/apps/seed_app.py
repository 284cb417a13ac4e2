"""App 2: the seed recipe, as /work/shared/seed/graceful-sse-shutdown-pattern.md has it.

Sections 1 (patched ``uvicorn.main.Server.handle_exit`` with its ``time.sleep(1.0)``), 2 (the
``update_stream`` generator with the OOB swap and ``event: close``), 4 (the background task) and
the usage example, copied as written. The only choices the document leaves open:

- ``SSEBroadcastManager(**config.SSE_CONFIG)``: ``config`` is not given, so the manager's own
  defaults are used (``max_queue_size=100, history_size=50, default_timeout=0.1``).
- ``collect_updates()`` is not given: it returns no updates (the streams stay idle, as in every
  other app of the benchmark), and the background task is started with the app (lifespan).
- ``monitor_script`` is an abbreviated copy of section 3's JavaScript (served by ``/``, never run here).
- ``/health`` is the benchmark's readiness probe.
"""

import asyncio
import json
import time
from datetime import datetime

from cjm_fasthtml_sse.core import SSEBroadcastManager
from fasthtml.common import *  # noqa: F403  (as in the document's usage example)
from uvicorn.main import Server

from harness.probe import probe

# --- Section 1: Server-Side Shutdown Handler ------------------------------------------------

# Store the original handler
original_handler = Server.handle_exit

# Initialize SSE Broadcast Manager (must be before the handler class)
sse_manager = SSEBroadcastManager()  # the document's **config.SSE_CONFIG is not given: defaults


class SSEShutdownHandler:
    """Handles graceful SSE connection shutdown"""

    should_exit = False
    active_connections = set()
    shutdown_event = asyncio.Event()

    @staticmethod
    def handle_exit(*args, **kwargs):
        """Custom exit handler that notifies SSE clients before shutdown"""
        SSEShutdownHandler.should_exit = True

        # Signal shutdown to all waiting tasks
        SSEShutdownHandler.shutdown_event.set()

        # Send shutdown message directly to all SSE connection queues
        try:
            print(f"\nBroadcasting shutdown to {sse_manager.connection_count} connections...")

            # Create the shutdown message
            shutdown_message = {
                "type": "shutdown",
                "timestamp": datetime.now().isoformat(),
                "data": {"message": "Server shutting down"},
            }

            # Send directly to all connection queues (synchronously)
            # This bypasses async issues during shutdown
            for queue in list(sse_manager.connections):
                try:
                    # Use put_nowait to avoid blocking
                    queue.put_nowait(shutdown_message)
                except asyncio.QueueFull:
                    print("Queue full, couldn't send shutdown message")
                except Exception as e:
                    print(f"Error sending shutdown to queue: {e}")

            print(f"Sent shutdown message to {len(sse_manager.connections)} connections")

            # Give connections time to process the messages
            time.sleep(1.0)

        except Exception as e:
            print(f"Error during shutdown broadcast: {e}")

        # Close any remaining active connections
        print(f"Closing {len(SSEShutdownHandler.active_connections)} active SSE connections...")
        for connection in list(SSEShutdownHandler.active_connections):
            try:
                connection.cancel()
            except Exception as e:
                print(f"Error closing connection: {e}")
        SSEShutdownHandler.active_connections.clear()

        # Call the original handler
        original_handler(*args, **kwargs)


# Replace the default handler
Server.handle_exit = SSEShutdownHandler.handle_exit


# --- Section 4: Background Tasks with Shutdown Check ------------------------------------------


async def collect_updates():
    return []  # not given by the document; idle streams, as in every app of the benchmark


async def generate_system_updates():
    """Background task that respects shutdown signal"""
    while not SSEShutdownHandler.should_exit:
        try:
            # Generate and broadcast updates
            updates = await collect_updates()
            if updates:
                await sse_manager.broadcast("system_update", {"updates": updates})

            # Wait before next iteration
            await asyncio.sleep(1)

        except Exception as e:
            print(f"Error generating updates: {e}")
            await asyncio.sleep(1)


_background = set()


async def lifespan(app):  # FastHTML takes an async generator as lifespan
    task = asyncio.create_task(generate_system_updates())
    _background.add(task)
    yield


# --- Usage example --------------------------------------------------------------------------

# Create app
app, rt = fast_app(lifespan=lifespan)  # noqa: F405


# --- Section 2: SSE Endpoint with Shutdown Handling -------------------------------------------


@rt("/stream_updates")
async def stream_updates():
    """SSE endpoint with graceful shutdown support"""

    async def update_stream():
        # Track this connection
        current_task = asyncio.current_task()

        # Register with SSEBroadcastManager
        queue = await sse_manager.register_connection()

        # Track in shutdown handler
        SSEShutdownHandler.active_connections.add(current_task)

        try:
            # Send initial connection confirmation
            yield f": Connected to updates (active connections: {sse_manager.connection_count})\n\n"

            # Main message loop
            while not SSEShutdownHandler.should_exit:
                try:
                    # Wait for message with timeout for heartbeat
                    message = await asyncio.wait_for(queue.get(), timeout=30.0)

                    # Check for shutdown message
                    if message.get("type") == "shutdown":
                        print("Received shutdown message, closing SSE connection")

                        # Send OOB swap to remove the SSE element
                        # This prevents HTMX from trying to reconnect
                        close_element = Div(  # noqa: F405
                            id="sse-connection", hx_swap_oob="true", style="display: none;"
                        )
                        yield sse_message(close_element)  # noqa: F405

                        # Send close event for JavaScript handling
                        yield f"event: close\ndata: {json.dumps({'message': 'Server shutting down'})}\n\n"
                        break

                    # Handle normal updates
                    if message.get("type") == "system_update":
                        updates = message.get("data", {}).get("updates", [])
                        if updates:
                            yield sse_message(Div(*updates))  # noqa: F405

                except asyncio.TimeoutError:
                    # Send heartbeat
                    yield f": heartbeat {datetime.now().isoformat()}\n\n"

                except asyncio.CancelledError:
                    # Connection cancelled
                    print("SSE connection cancelled")
                    yield f"event: close\ndata: {json.dumps({'message': 'Connection cancelled'})}\n\n"
                    break

                except Exception as e:
                    print(f"Error in update stream: {e}")
                    break

            # Notify client if we exit due to shutdown
            if SSEShutdownHandler.should_exit:
                yield f"event: close\ndata: {json.dumps({'message': 'Server shutting down'})}\n\n"

        finally:
            # Cleanup
            await sse_manager.unregister_connection(queue)
            SSEShutdownHandler.active_connections.discard(current_task)

    return EventStream(update_stream())  # noqa: F405


# HTML with SSE connection
monitor_script = """
// SSE Connection Monitor with Shutdown Handling (section 3 of the document; not run here)
(function() {
    let reconnectAttempts = 0;
    let maxReconnectAttempts = 10;
    let reconnectDelay = 1000;
    let isShuttingDown = false;
    let statusElement = document.getElementById('connection-status');
    let sseElement = document.getElementById('sse-connection');
    document.body.addEventListener('htmx:sseMessage', function(evt) {
        if (evt.detail.elt === sseElement && evt.detail.event === 'close') {
            isShuttingDown = true;
            reconnectAttempts = maxReconnectAttempts;
            if (sseElement._sseEventSource) {
                sseElement._sseEventSource.close();
                delete sseElement._sseEventSource;
            }
        }
    });
})();
"""


@rt("/")
def index():
    return Div(  # noqa: F405
        # SSE connection element
        Div(  # noqa: F405
            id="sse-connection",
            hx_ext="sse",
            sse_connect="/stream_updates",
            sse_swap="message",
            style="display: none;",
        ),
        # Connection status display
        Div(id="connection-status"),  # noqa: F405
        # Include the JavaScript monitor
        Script(monitor_script),  # noqa: F405
    )


@rt("/health")
async def health():
    return JSONResponse(probe())  # noqa: F405
