"""talkcore: the pure sync core of talksync. Values in, values out; no I/O."""
