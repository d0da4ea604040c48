from services.segmentation.app import create_app
from services.segmentation.settings import Settings
from shared.service import serve

settings = Settings()
serve(lambda: create_app(settings), settings)
