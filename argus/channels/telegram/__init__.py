"""The Telegram channel: a Bot API long poller, an outbox and live chat feedback, in the gateway."""
