from cog import BasePredictor, Input


class Predictor(BasePredictor):
    """Greets whoever is named in the input."""

    def predict(self, name: str = Input(description="Who to greet")) -> str:
        return f"hello {name}"
