from csms.cli.main import app

app()
