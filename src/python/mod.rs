//! Python dependencies and the Cog runtime as native layers.
