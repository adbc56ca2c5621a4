"""Built-in host providers. Each module is a portarun plugin registered through the
``portarun`` entry-point group, exactly like a third-party provider."""
