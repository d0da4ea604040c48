from services.compliance.app import create_app
from services.compliance.settings import Settings
from shared.service import serve

settings = Settings()
serve(lambda: create_app(settings), settings)
