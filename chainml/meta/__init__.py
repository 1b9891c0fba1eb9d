"""The meta-learning engine: task families, tiny models, one adaptation routine, MAML / FOMAML /
Reptile trainers, the TinyMetaFed-style node step, int8 and sparse updates, and evaluation.

Nothing here knows about chains, IPFS or processes: the swarm layers call these pure functions.
"""

from chainml.meta.adapt import AdaptConfig, accuracy, adapt, loss_fn, refit_head
from chainml.meta.evaluate import EvalResult, StepResult, evaluate, mean_ci95
from chainml.meta.federated import (
    AdamState,
    FederatedConfig,
    FederatedResult,
    MetaClient,
    NodeConfig,
    NodeResult,
    RoundStats,
    adam_step,
    apply_update,
    mean_aggregate,
    node_step,
    node_steps,
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
from chainml.meta.reptile import ReptileConfig, train_reptile
from chainml.meta.sparse import (
    SparseUpdate,
    dense_update_bytes,
    flatten_body,
    sparsify,
    top_k_indices,
    unflatten_body,
)
from chainml.meta.tasks import FAMILIES, Episode, Task, TaskFamily, get_family, stack_episodes
from chainml.meta.training import TaskSampling, TrainResult

__all__ = [
    "ARCHITECTURES",
    "FAMILIES",
    "MCU_FLASH_BYTES",
    "MCU_RAM_BYTES",
    "AdamState",
    "AdaptConfig",
    "Episode",
    "EvalResult",
    "FederatedConfig",
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
    "ReptileConfig",
    "RoundStats",
    "SparseUpdate",
    "StepResult",
    "Task",
    "TaskFamily",
    "TaskSampling",
    "TrainResult",
    "accuracy",
    "adam_step",
    "adapt",
    "apply_update",
    "dense_update_bytes",
    "dequantize_params",
    "dequantize_tensor",
    "evaluate",
    "fake_quant",
    "fake_quant_params",
    "flatten_body",
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
    "simulate_federated",
    "sparsify",
    "stack_episodes",
    "top_k_indices",
    "train_fomaml",
    "train_joint",
    "train_maml",
    "train_reptile",
    "unflatten_body",
]
