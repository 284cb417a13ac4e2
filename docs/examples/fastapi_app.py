from fastapi import FastAPI
from pydantic import BaseModel

from graceful_sse import EventStream, Hub

hub = Hub()
app = FastAPI(lifespan=hub.lifespan)


class Message(BaseModel):
    text: str


@app.get("/updates")
async def updates() -> EventStream:
    return EventStream(hub.subscribe("updates"))


@app.post("/say", status_code=204)
async def say(message: Message) -> None:
    await hub.publish("updates", message.text)
