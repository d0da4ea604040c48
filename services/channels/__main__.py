from services.channels.app import create_app
from services.channels.settings import Settings
from shared.service import serve

settings = Settings()
serve(lambda: create_app(settings), settings)
