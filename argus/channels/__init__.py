"""Chat channels inside the gateway (Telegram first): inputs in, turn results and approvals out."""
