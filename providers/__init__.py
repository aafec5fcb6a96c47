"""The SMS providers' HTTP APIs as Ruta calls them (Twilio and Africa's Talking senders, bulk
sends) and the fake provider server that stands in for them on loopback. Below the gateway and
the workers, which both look down to it; it knows nothing of Ruta's database."""
