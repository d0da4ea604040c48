from services.scheduler.app import create_app
from services.scheduler.settings import Settings
from shared.service import serve

settings = Settings()
serve(lambda: create_app(settings), settings)
