from ticketing.config import Settings
from ticketing.web import run_app
from waitingroom.app import create_app


def main() -> None:
    settings = Settings.from_env()
    run_app(create_app(settings), settings, settings.waitingroom_port)


if __name__ == "__main__":
    main()
