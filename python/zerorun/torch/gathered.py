"""zerorun.torch.GatheredParameters: DeepSpeed's zero.GatheredParameters over the engine."""

import torch
import torch.distributed as dist


class GatheredParameters:
    """DeepSpeed's zero.GatheredParameters: inside the block the given parameters are whole on
    every rank (stage 3 gathers their units; stages 0-2 have them already). With modifier_rank,
    that rank's values when the block ends become everyone's, in the fp32 masters too (a
    collective: every rank enters the block). Parameters the engine does not hold (frozen ones)
    are left alone."""

    def __init__(self, params, modifier_rank=None, fwd_module=None, enabled=True):
        params = [params] if torch.is_tensor(params) else list(params or [])
        self._held = [p._zerorun + (p,) for p in params if enabled and hasattr(p, "_zerorun")]
        # Made under zero_init and not yet in an engine (from_pretrained loading into them):
        # with a modifier they become real tensors here, that rank's values everyone's at the
        # end, and initialize takes them as they are (until then each rank holds them whole).
        self._unmade = [p for p in params if enabled and modifier_rank is not None and
                        not hasattr(p, "_zerorun") and p.is_meta]
        self._modifier = modifier_rank
        self._units = sorted({(id(e), u): (e, u) for e, u, _, _ in self._held}.values(),
                             key=lambda eu: eu[1])

    def __enter__(self):
        for p in self._unmade:  # The same Parameter object (ties, HF's references).
            torch.utils.swap_tensors(p, torch.nn.Parameter(torch.empty(p.shape, dtype=p.dtype),
                                                           requires_grad=p.requires_grad))
        for engine, u in self._units:
            if engine.stage == 3:
                engine._gather(u, False)
            engine._pins[u] += 1
        return self

    def __exit__(self, *exc):
        modified = self._modifier is not None and exc[0] is None
        if modified and self._unmade and dist.is_initialized() and dist.get_world_size() > 1:
            for p in self._unmade:
                dist.broadcast(p.data, src=self._modifier)
        if modified:
            for engine, u, t, p in self._held:
                values = p.detach().to("cpu", torch.float32).contiguous()
                engine._bridge.set_tensor(u, t, values, self._modifier)
            for engine in {id(e): e for e, _, _, _ in self._held}.values():
                engine._weights_changed()
        for engine, u in self._units:
            engine._pins[u] -= 1
            if engine.stage == 3:
                engine._free(u)  # Unless an outer block still pins it: then refill it.
                if modified and engine._resident[u]:
                    engine._resident[u] = False
                    engine._gather(u, False)
        return False
