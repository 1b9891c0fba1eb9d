"""The meta-learning engine: task families, tiny models, one adaptation routine, MAML / FOMAML /
Reptile trainers, the one federated recipe (node step, server step), int8 and sparse updates,
and evaluation.

Nothing here knows about chains, IPFS or processes: the swarm layers call these pure functions.
"""

from chainml.meta.adapt import AdaptConfig, accuracy, adapt, loss_fn, refit_head
from chainml.meta.evaluate import EvalResult, StepResult, evaluate, mean_ci95
from chainml.meta.federated import (
    FederatedResult,
    MetaClient,
    NodeConfig,
    NodeResult,
    RoundStats,
    ServerState,
    adam_step,
    mean_aggregate,
    node_step,
    node_steps,
    server_step,
    simulate_federated,
)
from chainml.meta.maml import MAMLConfig, scratch_init, train_fomaml, train_joint, train_maml
from chainml.meta.models import (
    ARCHITECTURES,
    MCU_FLASH_BYTES,
    MCU_RAM_BYTES,
    Model,
    ModelSpec,
    Params,
    ParamSpec,
    get_model,
    model_spec,
)
from chainml.meta.quant import (
    QuantizedTensor,
    dequantize_params,
    dequantize_tensor,
    fake_quant,
    fake_quant_params,
    quantize_params,
    quantize_tensor,
)
from chainml.meta.recipe import Recipe
from chainml.meta.reptile import ReptileConfig, train_reptile
from chainml.meta.sparse import (
    SparseUpdate,
    decode_sparse,
    dense_update_bytes,
    encode_sparse,
    flatten_params,
    sparsify,
    top_k_indices,
    unflatten_params,
)
from chainml.meta.tasks import FAMILIES, Episode, Task, TaskFamily, get_family, stack_episodes
from chainml.meta.training import TaskSampling, TrainResult

__all__ = [
    "ARCHITECTURES",
    "FAMILIES",
    "MCU_FLASH_BYTES",
    "MCU_RAM_BYTES",
    "AdaptConfig",
    "Episode",
    "EvalResult",
    "FederatedResult",
    "MAMLConfig",
    "MetaClient",
    "Model",
    "ModelSpec",
    "NodeConfig",
    "NodeResult",
    "ParamSpec",
    "Params",
    "QuantizedTensor",
    "Recipe",
    "ReptileConfig",
    "RoundStats",
    "ServerState",
    "SparseUpdate",
    "StepResult",
    "Task",
    "TaskFamily",
    "TaskSampling",
    "TrainResult",
    "accuracy",
    "adam_step",
    "adapt",
    "decode_sparse",
    "dense_update_bytes",
    "dequantize_params",
    "dequantize_tensor",
    "encode_sparse",
    "evaluate",
    "fake_quant",
    "fake_quant_params",
    "flatten_params",
    "get_family",
    "get_model",
    "loss_fn",
    "mean_aggregate",
    "mean_ci95",
    "model_spec",
    "node_step",
    "node_steps",
    "quantize_params",
    "quantize_tensor",
    "refit_head",
    "scratch_init",
    "server_step",
    "simulate_federated",
    "sparsify",
    "stack_episodes",
    "top_k_indices",
    "train_fomaml",
    "train_joint",
    "train_maml",
    "train_reptile",
    "unflatten_params",
]
