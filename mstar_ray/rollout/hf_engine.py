"""Rollout engine on transformers' `generate`: batched prompts, K samples each, on CPU or GPU."""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch
from transformers import GenerationConfig, LogitsProcessorList

from mstar_ray.core.records import Prompt, PromptRollouts, Sample
from mstar_ray.core.sampling import SamplingParams
from mstar_ray.core.seeds import request_seed
from mstar_ray.models.encoding import generation_inputs
from mstar_ray.models.loading import load_policy, load_processor
from mstar_ray.rollout.row_sampling import PerSequenceSampling
from mstar_ray.sync.buckets import SyncPlan, contiguous_span, lay_out_like
from mstar_ray.sync.receiver import ReceiveBuffers, ReceiveStats, received_weights, timed_receive
from mstar_ray.sync.transport import BroadcastGroup


class TransformersRolloutEngine:
    """Holds one policy copy and samples responses from it."""

    def __init__(
        self,
        model_path: str,
        dtype: str = "float32",
        device: str = "cpu",
        sequences_per_call: int = 256,
        trust_remote_code: bool = False,
    ) -> None:
        self.processor = load_processor(model_path, trust_remote_code)
        self.model = load_policy(model_path, dtype, trust_remote_code).to(device)
        self.model.eval()
        self.device = device
        self.sequences_per_call = sequences_per_call
        self.sync_ranks = 1  # members of the sync group this engine brings
        self.weights_version: int | None = 0  # None while a sync is incomplete
        self.sync_group: BroadcastGroup | None = None

    @torch.no_grad()
    def generate(
        self, prompts: Sequence[Prompt], params: SamplingParams, prefixes: Sequence[str] | None = None
    ) -> list[PromptRollouts]:
        """Sample `params.n` responses for each prompt (greedy when temperature is 0).

        With `prefixes`, each prompt's responses continue the given response prefix, and the sample texts include
        it (the PRM's Monte-Carlo step labels complete partial responses this way).
        """
        prefixes = list(prefixes) if prefixes is not None else [""] * len(prompts)
        results: list[PromptRollouts] = []
        # Whole prompts per call, as many as fill the sequence budget: per-step overhead favours wide batches.
        per_call = max(1, self.sequences_per_call // params.n)
        for start in range(0, len(prompts), per_call):
            end = start + per_call
            results.extend(self._generate_batch(prompts[start:end], params, prefixes[start:end]))
        return results

    def _stop_token_ids(self) -> list[int]:
        configured = self.model.generation_config.eos_token_id
        ids = configured if isinstance(configured, list) else [configured] if configured is not None else []
        return sorted({*ids, self.processor.tokenizer.eos_token_id})

    def _generation_config(self, params: SamplingParams) -> GenerationConfig:
        """Exactly the requested decoding, nothing inherited from the checkpoint's generation_config: greedy, with
        sampling (when asked for) done by `PerSequenceSampling` on the logits."""
        return GenerationConfig(
            do_sample=False,
            max_new_tokens=params.max_new_tokens,
            eos_token_id=self._stop_token_ids(),
            pad_token_id=self.processor.tokenizer.pad_token_id,
        )

    def _generate_batch(
        self, prompts: Sequence[Prompt], params: SamplingParams, prefixes: Sequence[str]
    ) -> list[PromptRollouts]:
        # One row per sample: prompt i's n samples are rows i*n .. i*n+n-1, each with its own seed.
        rows = [(prompt, prefix) for prompt, prefix in zip(prompts, prefixes, strict=True) for _ in range(params.n)]
        row_prompts, row_prefixes = [p for p, _ in rows], [x for _, x in rows]
        inputs = generation_inputs(self.processor, row_prompts, row_prefixes).to(self.device)
        processors = LogitsProcessorList()
        if not params.greedy:
            seeds = [request_seed(params.seed, p.id, x, j % params.n) for j, (p, x) in enumerate(rows)]
            device = torch.device(self.device)
            processors.append(PerSequenceSampling(seeds, params.temperature, params.top_k, params.top_p, device))
        output = self.model.generate(
            **inputs,
            generation_config=self._generation_config(params),
            logits_processor=processors,
            return_dict_in_generate=True,
            output_logits=params.logprobs,
        )
        new_tokens = output.sequences[:, inputs["input_ids"].shape[1] :]  # (B * n, T_new)
        is_stop = torch.isin(new_tokens, torch.tensor(self._stop_token_ids(), device=new_tokens.device))
        finished = is_stop.any(dim=1)  # (B * n,)
        lengths = torch.where(finished, is_stop.int().argmax(dim=1) + 1, new_tokens.shape[1])
        texts = self.processor.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        logprobs = None
        if params.logprobs:
            # Log-probabilities of the raw logits (before temperature or filtering), as vLLM reports them.
            steps = [
                step.float().log_softmax(-1).gather(-1, new_tokens[:, t : t + 1])  # (B * n, 1), one step at a time
                for t, step in enumerate(output.logits)
            ]
            logprobs = torch.cat(steps, dim=1)  # (B * n, T_new)
        results = []
        for i, prompt in enumerate(prompts):
            samples = []
            for r in range(i * params.n, (i + 1) * params.n):
                length = int(lengths[r])
                token_lps = logprobs[r, :length].tolist() if logprobs is not None else None
                text, done = prefixes[i] + texts[r], bool(finished[r])
                samples.append(Sample(prompt.id, text, length, done, self.weights_version, token_logprobs=token_lps))
            results.append(PromptRollouts(prompt, samples))
        return results

    def join_weight_sync(self, host: str, port: int, world_size: int, first_rank: int, timeout_s: float) -> None:
        """Join the trainer's sync group at rank `first_rank`."""
        self.sync_group = BroadcastGroup(host, port, first_rank, world_size, torch.device(self.device), timeout_s)
        self.sync_buffers = ReceiveBuffers(torch.device(self.device))

    def receive_weights(self, plan: SyncPlan) -> ReceiveStats:
        """Receive one sync's buckets into the model's parameters."""
        params = dict(self.model.named_parameters())
        unknown = sorted(plan.names - params.keys())
        if unknown:
            raise KeyError(f"the rollout model has no parameters named {unknown[:5]}")

        spans = [contiguous_span([params[slot.name] for slot in bucket.slots]) for bucket in plan.buckets]

        @torch.no_grad()
        def receive() -> None:
            if all(span is not None and span.numel() == b.numel for span, b in zip(spans, plan.buckets, strict=True)):
                # Laid out like the plan's buckets: receive straight into the parameters, no loader at all.
                start = time.perf_counter()
                for work in [self.sync_group.broadcast_async(span) for span in spans]:
                    work.wait()
                self.sync_buffers.waiting_seconds = time.perf_counter() - start
                return
            for name, tensor in received_weights(self.sync_group, plan, self.sync_buffers):
                params[name].copy_(tensor)
            lay_out_like(plan, params)  # so that the next sync with this plan needs no copies...
            self.sync_buffers.kept.clear()  # ...nor these buffers

        return timed_receive(plan, self.sync_buffers, receive)

    def probe_weight_sync(self, nbytes: int) -> float:
        """Receive one raw broadcast of `nbytes` (the transport's limit); returns its seconds."""
        return self.sync_group.probe(nbytes)

    def leave_weight_sync(self) -> None:
        if self.sync_group is not None:
            self.sync_group.close()
            self.sync_group = None

    def sleep(self) -> None:
        """Nothing to release: the transformers backend keeps its weights while the trainers train."""

    def wake_up(self) -> None:
        """Nothing to restore (see `sleep`)."""

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The current policy weights (CPU copies)."""
        return {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
