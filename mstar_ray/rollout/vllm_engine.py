"""Rollout engine on vLLM: continuous batching, images as `multi_modal_data`, weights from the sync group.

The engine runs inside the rollout actor's process (no engine-core subprocess), so the actor owns it the way it owns
a transformers model. Tensor parallelism on GPUs spawns vLLM's own worker processes on the actor's GPUs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

from mstar_ray.config import VLLMConfig
from mstar_ray.core.records import Prompt, PromptRollouts, Sample
from mstar_ray.core.sampling import SamplingParams
from mstar_ray.core.seeds import request_seed
from mstar_ray.data.images import load_image
from mstar_ray.models.encoding import prompt_text
from mstar_ray.models.loading import load_processor
from mstar_ray.sync.buckets import SyncPlan
from mstar_ray.sync.receiver import ReceiveStats

EXTENSION = "mstar_ray.rollout.vllm_extension.WeightSyncExtension"


def _refused_thread_change(record: logging.LogRecord) -> bool:
    """Drop vLLM's CPU worker's warning that it skipped a `torch.set_num_threads` call. Its renderer sets and restores
    the thread count around every image it processes; in our in-process engine the CPU worker, which keeps the
    threads the actor chose, refuses each change and warns twice per request. Refusing is right here, so the
    warning says nothing."""
    return not str(record.msg).startswith("CPU backend doesn't allow to use `torch.set_num_threads`")


class VLLMRolloutEngine:
    """Holds one `vllm.LLM` and samples responses from it."""

    def __init__(
        self,
        model_path: str,
        dtype: str,
        use_gpu: bool,
        options: VLLMConfig,
        seed: int = 0,
        trust_remote_code: bool = False,
        deterministic: bool = False,
    ) -> None:
        # In-process engine core: the actor's process is the engine, and its scheduling is deterministic (vLLM's
        # reproducibility rule for offline use). Set before vllm is imported, as are the two below.
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        if deterministic and use_gpu:
            # Batch-invariant kernels: a request's tokens no longer depend on the batch it is decoded in. Only vLLM's
            # GPU workers have them (its CPU backend ignores the switch).
            os.environ["VLLM_BATCH_INVARIANT"] = "1"
        if not use_gpu:
            # Keep the actor's torch thread count instead of binding OpenMP threads to every core of the node.
            os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")
            # vLLM's ahead-of-time compile cache fails to load on its CPU backend ("'function' object has no
            # attribute 'finalize_loading'"), so every engine start would compile the model again; with the older
            # cache path a start loads what an earlier one compiled (docs/results.md, "Speed").
            os.environ.setdefault("VLLM_USE_AOT_COMPILE", "0")
            logging.getLogger("vllm.v1.worker.cpu_worker").addFilter(_refused_thread_change)
        import vllm

        self.processor = load_processor(model_path, trust_remote_code)
        limits = {"gpu_memory_utilization": options.gpu_memory_utilization}
        if options.max_num_seqs is not None:
            limits["max_num_seqs"] = options.max_num_seqs
        if options.kv_cache_gib is not None:
            limits["kv_cache_memory_bytes"] = int(options.kv_cache_gib * 2**30)
        self.llm = vllm.LLM(
            model=model_path,
            dtype=dtype,
            seed=seed,
            trust_remote_code=trust_remote_code,
            tensor_parallel_size=options.tensor_parallel_size,
            distributed_executor_backend="mp" if options.tensor_parallel_size > 1 else "uni",
            max_model_len=options.max_model_len,
            enforce_eager=options.enforce_eager,
            enable_prefix_caching=options.enable_prefix_caching,
            enable_sleep_mode=options.sleep_while_training,
            # A chunked prefill rewinds a seeded request's generator, which vLLM's CPU backend cannot do; whole
            # prefills keep per-request seeds (reproducible samples) working there.
            enable_chunked_prefill=use_gpu,
            limit_mm_per_prompt={"image": options.max_images_per_prompt},
            worker_extension_cls=EXTENSION,
            **limits,
        )
        self.sync_ranks = options.tensor_parallel_size  # members of the sync group this engine brings
        self.sleeps = options.sleep_while_training  # GPUs only (the config check refuses it on the CPU)
        self.weights_version: int | None = 0  # None while a sync is incomplete

    def generate(
        self, prompts: Sequence[Prompt], params: SamplingParams, prefixes: Sequence[str] | None = None
    ) -> list[PromptRollouts]:
        """Sample `params.n` responses per prompt; with `prefixes`, each continues its prefix (kept in the text)."""
        import vllm

        prefixes = list(prefixes) if prefixes is not None else [""] * len(prompts)
        # vLLM samples greedily only with n=1, so greedy requests are repeated instead.
        copies, per_request = (params.n, 1) if params.greedy else (1, params.n)
        requests, sampling = [], []
        for prompt, prefix in zip(prompts, prefixes, strict=True):
            request = {
                "prompt": prompt_text(self.processor, prompt) + prefix,
                "multi_modal_data": _images(prompt),
            }
            for copy in range(copies):
                requests.append(request)
                sampling.append(
                    vllm.SamplingParams(
                        n=per_request,
                        temperature=params.temperature,
                        top_p=params.top_p,
                        top_k=params.top_k,
                        max_tokens=params.max_new_tokens,
                        seed=request_seed(params.seed, prompt.id, prefix, copy),
                        logprobs=0 if params.logprobs else None,
                    )
                )
        outputs = self.llm.generate(requests, sampling, use_tqdm=False)
        results = []
        for i, (prompt, prefix) in enumerate(zip(prompts, prefixes, strict=True)):
            completions = [c for out in outputs[i * copies : (i + 1) * copies] for c in out.outputs]
            samples = [self._sample(prompt, prefix, c, params.logprobs) for c in completions]
            results.append(PromptRollouts(prompt, samples))
        return results

    def _sample(self, prompt: Prompt, prefix: str, completion, with_logprobs: bool) -> Sample:
        token_logprobs = None
        if with_logprobs:
            token_logprobs = [
                float(position[token].logprob)
                for position, token in zip(completion.logprobs, completion.token_ids, strict=True)
            ]
        return Sample(
            prompt.id,
            prefix + completion.text,
            len(completion.token_ids),
            completion.finish_reason == "stop",
            self.weights_version,
            token_logprobs=token_logprobs,
        )

    def join_weight_sync(self, host: str, port: int, world_size: int, first_rank: int, timeout_s: float) -> None:
        """Every vLLM worker of this engine joins the trainer's sync group."""
        self.llm.collective_rpc("join_weight_sync", args=(host, port, world_size, first_rank, timeout_s))

    def receive_weights(self, plan: SyncPlan) -> ReceiveStats:
        """Load one sync's weights in every worker, then drop every cache computed with the old weights."""
        received = self.llm.collective_rpc("receive_weights", args=(plan,))
        self.llm.reset_prefix_cache()  # KV of shared prompt prefixes
        self.llm.llm_engine.reset_encoder_cache()  # vision-encoder outputs
        self.llm.reset_mm_cache()  # processed images, cleared on the workers by the reload; keep both sides in step
        return max(received, key=lambda stats: stats.seconds)  # the slowest tensor-parallel worker

    def probe_weight_sync(self, nbytes: int) -> float:
        return max(self.llm.collective_rpc("probe_weight_sync", args=(nbytes,)))

    def leave_weight_sync(self) -> None:
        self.llm.collective_rpc("leave_weight_sync")

    def sleep(self) -> None:
        """Free the GPU memory while the trainers train (weights are offloaded and come back on wake_up)."""
        if self.sleeps:
            self.llm.sleep(level=1)

    def wake_up(self) -> None:
        if self.sleeps:
            self.llm.wake_up()


def _images(prompt: Prompt) -> dict:
    """vLLM's multi-modal input: one image, or a list of several (rollout.vllm.max_images_per_prompt)."""
    images = [load_image(path) for path in prompt.images]
    if not images:
        return {}
    return {"image": images[0] if len(images) == 1 else images}
