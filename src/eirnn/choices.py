"""The named choices of the model and training, in one place and one order (the default first).

`TrainConfig` offers them as flag choices; the model and the losses accept exactly these.
Imports nothing, so the CLI can build its flags without torch.
"""

EMBEDDINGS = ("attention", "linear", "mlp")  # input embedding e(u), eirnn.model.embeddings
ACTIVATIONS = ("softplus", "relu")  # rate nonlinearity f, eirnn.model.recurrence
LOSSES = ("mse", "poisson")  # training loss, eirnn.losses
INITIAL_STATES = ("shared", "inferred")  # x[0]: one learned h0, or per trial (eirnn.model.encoder)
OBJECTIVES = ("free_running", "teacher_forced")  # fitting objective, eirnn.training.teacher_forcing
RECURRENT_INITS = ("least_squares", "random")  # initial W_rec, eirnn.training.next_step
PERTURBATION_GAINS = ("fixed", "learned")  # drive per unit of perturbation strength, docs/perturbations.md
LR_SCHEDULES = ("constant", "warmup_cosine", "plateau")  # learning rate per epoch, eirnn.training.schedules
