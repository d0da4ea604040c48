"""The customer self-service portal: signed links (``links.py``), strings in zh-CN and English (``i18n.py``),
server-rendered pages (``routes.py``, ``templates/``, ``static/``); the use cases are ``portal_service.py``."""
