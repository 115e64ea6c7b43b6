"""Model families behind one interface; `build_model` picks one by `model.family`."""

from engine.models.base import LanguageModel, ModelOutput, build_model, register

__all__ = ["LanguageModel", "ModelOutput", "build_model", "register"]
