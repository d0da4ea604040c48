"""Message content as data: the built-in templates (``templates/``), the template language (``engine``)
and the content lint with its lexicons (``lint``, ``lexicon/``), CN-CONTENT and US-EOPTOUT."""
