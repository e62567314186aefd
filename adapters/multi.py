"""One shared encoder, many named adapters, one forward per mixed batch.

Rows in a batch may belong to different adapters and task kinds. A routed
:class:`~adapters.batch.Batch` holds each adapter's rows contiguously; the encoder runs
once (PEFT's per-row ``adapter_names``, or the LoRA bank's runs) and each run's hidden
states go to its adapter's head. Training uses the same class with one adapter in train
mode, so what is trained is exactly what is served.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import torch
from peft import PeftConfig, PeftModel, PeftType, get_peft_model, set_peft_model_state_dict
from torch import nn

from .backbones import Backbone
from .bank import LoraBanks, lora_weights, routed
from .batch import Batch, Run, route
from .encoding import EncodedRow, Encoder, pad_rows
from .heads import Head
from .interface import Slot, head_logits, predict_rows
from .readout import IDENTITY, Readout
from .tasks import TaskSpec
from .windows import LongInput

BASE = "__base__"  # PEFT's name for "no adapter" rows


class MultiAdapterModel(nn.Module):
    """``lora="peft"`` trains and serves through PEFT; ``lora="bank"`` serves LoRA
    adapters through :mod:`adapters.bank` (same outputs, one pass per layer)."""

    def __init__(self, backbone: Backbone, lora: str = "peft") -> None:
        super().__init__()
        if lora not in ("peft", "bank"):
            raise ValueError("lora must be 'peft' or 'bank'")
        self.backbone = backbone
        self.banks = LoraBanks(backbone.encoder) if lora == "bank" else None
        self.encoder_model: nn.Module = backbone.encoder  # becomes a PeftModel on first PEFT adapter
        self.heads = nn.ModuleDict()
        self.slots: dict[str, Slot] = {}
        self._peft_ids = itertools.count()
        self._head_ids = itertools.count()

    # -- adapters -------------------------------------------------------------
    @property
    def peft(self) -> PeftModel | None:
        return self.encoder_model if isinstance(self.encoder_model, PeftModel) else None

    def add_adapter(
        self,
        name: str,
        task: TaskSpec,
        head: Head,
        peft_config: PeftConfig | None = None,
        peft_state: dict[str, torch.Tensor] | None = None,
        max_length: int = 128,
        long_input: LongInput | None = None,
        readout: Readout = IDENTITY,
    ) -> Slot:
        """Make ``name`` servable. PEFT weights are fresh unless ``peft_state`` is given."""
        if name in self.slots:
            raise KeyError(f"adapter {name!r} is already loaded")
        if head.num_labels != task.num_labels:
            raise ValueError(f"head has {head.num_labels} outputs but task {task.name!r} has {task.num_labels} labels")
        # PEFT module keys cannot hold arbitrary text: use an internal id.
        peft_name = None
        if peft_config is not None and self.banks is not None:
            peft_name = f"adapter{next(self._peft_ids)}"
            self._add_banked(peft_name, peft_config, peft_state)
        elif peft_config is not None:
            peft_name = f"adapter{next(self._peft_ids)}"
            peft = self.peft
            if peft is None:
                peft = get_peft_model(self.backbone.encoder, peft_config, adapter_name=peft_name)
                self.encoder_model = peft
            else:
                peft.add_adapter(peft_name, peft_config)
            if peft_state is not None:
                result: Any = set_peft_model_state_dict(peft, peft_state, adapter_name=peft_name)
                missing = [k for k in result.missing_keys if f".{peft_name}." in k or k.endswith(f".{peft_name}")]
                # Prompt learning loads its embedding outside the reported result.
                if not peft_config.is_prompt_learning and (result.unexpected_keys or missing):
                    self._drop_peft(peft_name)
                    raise ValueError(
                        f"adapter weights do not fit the base: {len(missing)} missing, "
                        f"{len(result.unexpected_keys)} unexpected tensors"
                    )
        head.to(self.device)
        if self.peft is not None:
            self.peft.to(self.device)
        head_key = f"head{next(self._head_ids)}"  # module keys cannot hold arbitrary names
        self.heads[head_key] = head
        encoder = Encoder(self.backbone.tokenizer, task, max_length=max_length, long_input=long_input)
        slot = Slot(
            name=name, task=task, encoder=encoder, head=head, peft_name=peft_name, head_key=head_key, readout=readout
        )
        self.slots[name] = slot
        return slot

    def _add_banked(self, bank_name: str, config: PeftConfig, state: dict[str, torch.Tensor] | None) -> None:
        if config.peft_type != PeftType.LORA or state is None:
            raise ValueError("bank serving takes trained LoRA adapters only")
        if getattr(config, "use_dora", False):
            raise ValueError("DoRA adapters are not served")
        assert self.banks is not None  # only bank models call this
        self.banks.add(bank_name, lora_weights(config, state))

    def remove_adapter(self, name: str) -> None:
        slot = self.slots.pop(name)
        del self.heads[slot.head_key]
        if slot.peft_name is not None and self.banks is not None:
            self.banks.remove(slot.peft_name)
        elif slot.peft_name is not None:
            self._drop_peft(slot.peft_name)

    def _drop_peft(self, peft_name: str) -> None:
        peft = self.peft
        assert peft is not None  # a PEFT adapter is loaded
        if len(peft.peft_config) == 1:
            # Last adapter: back to the bare encoder (prompt learning only wraps it).
            prompt = peft.peft_config[peft_name].is_prompt_learning
            self.encoder_model = self.backbone.encoder if prompt else peft.unload()
        else:
            peft.delete_adapter(peft_name)

    @property
    def device(self) -> torch.device:
        return next(self.backbone.encoder.parameters()).device

    # -- forward ----------------------------------------------------------------
    def pad(self, rows: Sequence[EncodedRow]) -> tuple[torch.Tensor, torch.Tensor]:
        ids, mask = pad_rows(rows, self.backbone.tokenizer.pad_token_id or 0)
        return torch.from_numpy(ids).to(self.device), torch.from_numpy(mask).to(self.device)

    def encode_batch(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the shared encoder once; each run of rows through its own adapter."""
        ids, mask = self.pad(batch.rows)
        if self.banks is not None:
            runs = [Run(self.slots[r.slot].peft_name or BASE, r.start, r.stop) for r in batch.runs]
            with routed(runs):
                out = self.encoder_model(input_ids=ids, attention_mask=mask)
        elif self.peft is None:
            out = self.encoder_model(input_ids=ids, attention_mask=mask)
        else:
            adapters = {self.slots[r.slot].peft_name or BASE for r in batch.runs}
            if len(adapters) == 1 and BASE not in adapters:
                # Rows of one adapter (every training batch, and validation): PEFT's active-adapter
                # path, which training runs fused. PEFT's per-row mixed-batch path gathers and
                # scatters rows at every adapted layer: a LoRA validation pass took twice a full
                # model's.
                self.peft.set_adapter(adapters.pop())
                out = self.encoder_model(input_ids=ids, attention_mask=mask)
            elif self.training:
                raise ValueError("training batches must hold rows of exactly one PEFT adapter")
            else:
                names = [self.slots[slot].peft_name or BASE for slot in batch.slots]
                out = self.encoder_model(input_ids=ids, attention_mask=mask, adapter_names=names)
        hidden = out.last_hidden_state
        # Prompt tuning prepends virtual tokens: keep the positions of the real ones.
        return hidden[:, hidden.size(1) - ids.size(1) :], mask

    def hidden_states(self, rows: Sequence[EncodedRow], names: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Hidden states of rows in the given order (each row through its own adapter)."""
        batch = route(rows, names)
        hidden, mask = self.encode_batch(batch)
        back = torch.tensor(batch.order, device=hidden.device).argsort()
        return hidden[back], mask[back]

    def run(self, batch: Batch) -> list[torch.Tensor]:
        """Per-row logits ([L], or [words, L] for token tasks) in batch order."""
        hidden, mask = self.encode_batch(batch)
        return head_logits(self.slots, batch, hidden, mask)

    def forward(self, rows: Sequence[EncodedRow], names: Sequence[str]) -> list[torch.Tensor]:
        """Per-row logits in input order (rows of any adapters: routed here, once)."""
        return predict_rows(self, rows, names)

    def loss(
        self, rows: Sequence[EncodedRow], name: str, groups: Sequence[int] | None = None, pool: str = "mean"
    ) -> torch.Tensor:
        """Training loss for a batch of one adapter's labelled rows. ``groups``: the example each row
        belongs to; an example of several rows (a note read by chunks) is one prediction, its rows'
        logits pooled (``mean`` or ``max``) before the loss."""
        batch = route(rows, [name] * len(rows))  # one adapter: the rows keep their order
        hidden, mask = self.encode_batch(batch)
        head = self.slots[name].torch_head()
        packed = head.run(hidden, mask, batch.rows)
        if groups is None or len(set(groups)) == len(groups):
            return head.loss(packed, batch.rows)
        return head.group_loss(packed, batch.rows, groups, pool)
