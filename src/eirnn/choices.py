"""The named choices of the model and training, in one place and one order (the default first).

`TrainConfig` offers them as flag choices; the model and the losses accept exactly these.
Imports nothing, so the CLI can build its flags without torch.
"""

EMBEDDINGS = ("attention", "linear", "mlp")  # input embedding e(u), eirnn.model.embeddings
ACTIVATIONS = ("softplus", "relu")  # rate nonlinearity f, eirnn.model.recurrence
LOSSES = ("mse", "poisson")  # training loss, eirnn.losses
LR_SCHEDULES = ("constant", "warmup_cosine", "plateau")  # learning rate per epoch, eirnn.training.schedules
