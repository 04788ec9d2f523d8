"""The operators' entrance: staff sign-in, the authenticating proxy to the Prefect UI and API, the desk pages."""
