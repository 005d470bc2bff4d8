"""A development mail catcher: an SMTP server that keeps every message as an .eml file."""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import time
import uuid
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

log = logging.getLogger("mailcatcher")


class SaveToFolder:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content: bytes = envelope.original_content or envelope.content
        path = self.folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}.eml"
        path.write_bytes(content)
        message = email.message_from_bytes(content, policy=email.policy.default)
        log.info("caught mail", extra={"to": message["To"], "subject": message["Subject"], "file": str(path)})
        return "250 Message accepted for delivery"


async def serve(host: str, port: int, folder: Path) -> None:
    controller = Controller(SaveToFolder(folder), hostname=host, port=port)
    controller.start()
    log.info("mail catcher listening", extra={"smtp": f"{host}:{port}", "folder": str(folder)})
    try:
        await asyncio.Event().wait()
    finally:
        controller.stop()
