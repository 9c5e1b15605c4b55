from catalog_api.app import create_app
from ticketing.config import Settings
from ticketing.web import run_app


def main() -> None:
    settings = Settings.from_env()
    run_app(create_app(settings), settings, settings.catalog_port)


if __name__ == "__main__":
    main()
