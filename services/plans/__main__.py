from services.plans.app import create_app
from services.plans.settings import Settings
from shared.service import serve

settings = Settings()
serve(lambda: create_app(settings), settings)
