"""Where runs execute: in this process (``inline``); Ray actors come in a later module."""
