"""Exact DeepLIFT for ``nn.LSTM``, ``nn.GRU`` and ``nn.RNN``, written out as explicit cells.

Forward: the cell equations run once on the *unique* rows (n inputs + k references),
not on the n*k pairs. Backward: multipliers run per pair through the same equations,
using the rescale rule for every sigmoid/tanh and :class:`ProductRule` for every
gate * signal product, so each step conserves its difference exactly. Per step and
pair that is one ``[4H] x [4H, H]`` product for the recurrence and one ``[4H] x [4H, I]``
for the input.

Gate order and equations are PyTorch's: LSTM (i, f, g, o); GRU (r, z, n) with the
reset gate applied to ``W_hn h + b_hn`` (after the matrix product).
"""

from __future__ import annotations

import torch
from torch import nn

from .pairs import Pairing, _Grid
from .rules import ProductRule, secant, secant_stored, sigmoid_slope, tanh_slope


class _InputSide:
    """Where a layer's per-step input multipliers ``m_xp [a, b, G]`` go: straight into per-token
    attributions when the layer reads a captured embedding (see :class:`TokenSink`), otherwise
    back through ``W_ih`` to the layer input."""

    def __init__(self, ctx, grid: _Grid, XP: torch.Tensor | None, w_ih: torch.Tensor, T: int):
        self.ctx, self.grid, self.w_ih = ctx, grid, w_ih
        self.tok: torch.Tensor | None
        self.m_in: torch.Tensor | None
        if XP is not None:
            self.XPx, self.XPr = grid.sides(XP)
            self.tok, self.m_in = w_ih.new_empty(grid.a, grid.b, T), None
        else:
            self.tok, self.m_in = None, w_ih.new_empty(grid.a, grid.b, T, w_ih.shape[1])

    def step(self, t: int, m_xp: torch.Tensor) -> None:
        if self.tok is not None:
            self.tok[:, :, t] = torch.linalg.vecdot(m_xp, self.XPx[t] - self.XPr[t])
        elif self.m_in is not None:
            torch.matmul(m_xp, self.w_ih, out=self.m_in[:, :, t])

    def grad(self) -> torch.Tensor | None:
        """The gradient for the layer input (None when the tokens were delivered directly)."""
        if self.tok is None:
            assert self.m_in is not None  # one of the two is always set
            return self.grid.flat(self.m_in)
        tok = self.tok.reshape(self.grid.P, -1)
        self.ctx.sink.add(self.ctx.leaf, tok.flip(1) if self.ctx.reverse else tok)
        return None


class _LSTMLayer(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, h0, c0, w_ih, w_hh, bias, pairing, rule, leaf, reverse):
        with torch._C.DisableTorchFunction():  # plain tensors inside: skip the op checker
            return _LSTMLayer._forward(ctx, x, h0, c0, w_ih, w_hh, bias, pairing, rule, leaf, reverse)

    @staticmethod
    def _forward(ctx, x, h0, c0, w_ih, w_hh, bias, pairing, rule, leaf, reverse):
        grid = _Grid(x.shape[0], pairing, x, h0, c0)
        ux, h, c = grid.unique(x), grid.unique(h0), grid.unique(c0)
        T, H = ux.shape[1], w_hh.shape[1]
        xp = torch.addmm(bias, ux.reshape(-1, ux.shape[2]), w_ih.t()).view(ux.shape[0], T, 4 * H)
        Z = ux.new_empty(T, ux.shape[0], 4 * H)  # pre-activations
        A = torch.empty_like(Z)  # activations i, f, g, o
        C = ux.new_empty(T + 1, ux.shape[0], H)
        TC = ux.new_empty(T, ux.shape[0], H)
        out = ux.new_empty(ux.shape[0], T, H)
        C[0] = c
        for t in range(T):
            z = torch.addmm(xp[:, t], h, w_hh.t())
            Z[t] = z
            a = A[t]
            torch.sigmoid(z[:, : 2 * H], out=a[:, : 2 * H])
            torch.tanh(z[:, 2 * H : 3 * H], out=a[:, 2 * H : 3 * H])
            torch.sigmoid(z[:, 3 * H :], out=a[:, 3 * H :])
            c = a[:, H : 2 * H] * c + a[:, :H] * a[:, 2 * H : 3 * H]
            C[t + 1] = c
            tc = torch.tanh(c)
            TC[t] = tc
            h = a[:, 3 * H :] * tc
            out[:, t] = h
        # Half slopes f'(z)/2 of every activation, for the secant's fallback (see secant_stored).
        S = A * (1 - A) * 0.5
        S[..., 2 * H : 3 * H] = (1 - A[..., 2 * H : 3 * H] ** 2) * 0.5
        STC = (1 - TC * TC) * 0.5
        XP = xp.transpose(0, 1).contiguous() if leaf is not None else None  # [T, nu, 4H]
        ctx.save_for_backward(w_ih, w_hh, Z, A, S, C, TC, STC, XP)
        ctx.grid, ctx.rule, ctx.leaf, ctx.reverse, ctx.sink = (
            grid,
            rule,
            leaf,
            reverse,
            pairing.tokens if pairing else None,
        )
        return grid.expand(out), grid.expand(h), grid.expand(c)

    @staticmethod
    def backward(ctx, g_out, g_h, g_c):
        w_ih, w_hh, Z, A, S, C, TC, STC, XP = ctx.saved_tensors
        grid, rule = ctx.grid, ctx.rule
        T, H = Z.shape[0], w_hh.shape[1]
        inputs = _InputSide(ctx, grid, XP, w_ih, T)
        (Zx, Zr), (Ax, Ar), (Sx, Sr) = grid.sides(Z), grid.sides(A), grid.sides(S)
        (Cx, Cr), (TCx, TCr), (STx, STr) = grid.sides(C), grid.sides(TC), grid.sides(STC)
        mo = grid.grid(g_out, (T, H), w_hh)
        mh = grid.grid(g_h, (H,), w_hh).clone()
        mc = grid.grid(g_c, (H,), w_hh).clone()
        m_z = Z.new_empty(grid.a, grid.b, 4 * H)
        I_, F_, G_, O_ = slice(0, H), slice(H, 2 * H), slice(2 * H, 3 * H), slice(3 * H, 4 * H)
        for t in range(T - 1, -1, -1):
            mh = mh + mo[:, :, t]
            ax, ar = Ax[t], Ar[t]
            sec = secant_stored(Zx[t], Zr[t], ax, ar, Sx[t], Sr[t])  # all four gates at once
            # h = o * tanh(c)
            w_o, w_tc = rule.weights(ax[..., O_], ar[..., O_], TCx[t], TCr[t])
            mc = mc + mh * w_tc * secant_stored(Cx[t + 1], Cr[t + 1], TCx[t], TCr[t], STx[t], STr[t])
            torch.mul(mh * w_o, sec[..., O_], out=m_z[..., O_])
            # c = f * c_prev + i * g
            w_f, w_cp = rule.weights(ax[..., F_], ar[..., F_], Cx[t], Cr[t])
            w_i, w_g = rule.weights(ax[..., I_], ar[..., I_], ax[..., G_], ar[..., G_])
            torch.mul(mc * w_i, sec[..., I_], out=m_z[..., I_])
            torch.mul(mc * w_f, sec[..., F_], out=m_z[..., F_])
            torch.mul(mc * w_g, sec[..., G_], out=m_z[..., G_])
            inputs.step(t, m_z)
            mh = torch.matmul(m_z, w_hh)
            mc = mc * w_cp
        return inputs.grad(), grid.flat(mh), grid.flat(mc), None, None, None, None, None, None, None


class _GRULayer(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, pairing, rule, leaf, reverse):
        with torch._C.DisableTorchFunction():
            return _GRULayer._forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, pairing, rule, leaf, reverse)

    @staticmethod
    def _forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, pairing, rule, leaf, reverse):
        grid = _Grid(x.shape[0], pairing, x, h0)
        ux, h = grid.unique(x), grid.unique(h0)
        T, H = ux.shape[1], w_hh.shape[1]
        xp = torch.addmm(b_ih, ux.reshape(-1, ux.shape[2]), w_ih.t()).view(ux.shape[0], T, 3 * H)
        nu = ux.shape[0]
        Zrz = ux.new_empty(T, nu, 2 * H)  # pre-activations of r, z
        Arz = torch.empty_like(Zrz)  # r, z
        HN = ux.new_empty(T, nu, H)  # W_hn h + b_hn
        AN = ux.new_empty(T, nu, H)  # pre-activation of n
        N = ux.new_empty(T, nu, H)
        Hs = ux.new_empty(T + 1, nu, H)
        Hs[0] = h
        for t in range(T):
            hp = torch.addmm(b_hh, h, w_hh.t())
            zrz = xp[:, t, : 2 * H] + hp[:, : 2 * H]
            Zrz[t] = zrz
            rz = torch.sigmoid(zrz)
            Arz[t] = rz
            HN[t] = hp[:, 2 * H :]
            an = xp[:, t, 2 * H :] + rz[:, :H] * hp[:, 2 * H :]
            AN[t] = an
            n = torch.tanh(an)
            N[t] = n
            z = rz[:, H:]
            h = (1 - z) * n + z * h
            Hs[t + 1] = h
        XP = xp.transpose(0, 1).contiguous() if leaf is not None else None  # [T, nu, 3H]
        ctx.save_for_backward(w_ih, w_hh, Zrz, Arz, HN, AN, N, Hs, XP)
        ctx.grid, ctx.rule, ctx.leaf, ctx.reverse, ctx.sink = (
            grid,
            rule,
            leaf,
            reverse,
            pairing.tokens if pairing else None,
        )
        return grid.expand(Hs[1:].transpose(0, 1).contiguous()), grid.expand(h)

    @staticmethod
    def backward(ctx, g_out, g_h):
        w_ih, w_hh, Zrz, Arz, HN, AN, N, Hs, XP = ctx.saved_tensors
        grid, rule = ctx.grid, ctx.rule
        T, H = Zrz.shape[0], w_hh.shape[1]
        inputs = _InputSide(ctx, grid, XP, w_ih, T)
        (Zx, Zr), (Ax, Ar) = grid.sides(Zrz), grid.sides(Arz)
        (HNx, HNr), (ANx, ANr), (Nx, Nr), (Hx, Hr) = grid.sides(HN), grid.sides(AN), grid.sides(N), grid.sides(Hs)
        mo = grid.grid(g_out, (T, H), w_hh)
        mh = grid.grid(g_h, (H,), w_hh).clone()
        R_, Z_ = slice(0, H), slice(H, 2 * H)
        for t in range(T - 1, -1, -1):
            mh = mh + mo[:, :, t]
            zx, zr = Ax[t][..., Z_], Ar[t][..., Z_]
            # h' = (1 - z) * n + z * h   (z is the gate in both products)
            w_1mz, w_n = rule.weights(1 - zx, 1 - zr, Nx[t], Nr[t])
            w_z, w_h = rule.weights(zx, zr, Hx[t], Hr[t])
            m_an = mh * w_n * secant(ANx[t], ANr[t], Nx[t], Nr[t], tanh_slope)
            # a_n = x_n + r * hn   (r is the gate)
            w_r, w_hn = rule.weights(Ax[t][..., R_], Ar[t][..., R_], HNx[t], HNr[t])
            sig = secant(Zx[t], Zr[t], Ax[t], Ar[t], sigmoid_slope)
            m_zr = m_an * w_r * sig[..., R_]
            m_zz = mh * (w_z - w_1mz) * sig[..., Z_]
            m_hp = torch.cat([m_zr, m_zz, m_an * w_hn], dim=-1)
            inputs.step(t, torch.cat([m_zr, m_zz, m_an], dim=-1))
            mh = mh * w_h + torch.matmul(m_hp, w_hh)
        return inputs.grad(), grid.flat(mh), None, None, None, None, None, None, None, None


class _RNNLayer(torch.autograd.Function):
    """Elman RNN ``h' = act(W_ih x + b_ih + W_hh h + b_hh)`` (tanh or relu): the rescale rule
    on the activation, linear maps around it."""

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, bias, relu, pairing, leaf, reverse):
        with torch._C.DisableTorchFunction():
            grid = _Grid(x.shape[0], pairing, x, h0)
            ux, h = grid.unique(x), grid.unique(h0)
            T = ux.shape[1]
            xp = torch.addmm(bias, ux.reshape(-1, ux.shape[2]), w_ih.t()).view(ux.shape[0], T, -1)
            Z = ux.new_empty(T, ux.shape[0], w_hh.shape[0])
            Hs = ux.new_empty(T, ux.shape[0], w_hh.shape[0])
            for t in range(T):
                z = torch.addmm(xp[:, t], h, w_hh.t())
                Z[t] = z
                h = torch.relu(z) if relu else torch.tanh(z)
                Hs[t] = h
            S = (Z > 0).to(Z.dtype) * 0.5 if relu else (1 - Hs * Hs) * 0.5  # half slopes for the fallback
            XP = xp.transpose(0, 1).contiguous() if leaf is not None else None
            ctx.save_for_backward(w_ih, w_hh, Z, Hs, S, XP)
            ctx.grid, ctx.leaf, ctx.reverse = grid, leaf, reverse
            ctx.sink = pairing.tokens if pairing else None
            return grid.expand(Hs.transpose(0, 1).contiguous()), grid.expand(h)

    @staticmethod
    def backward(ctx, g_out, g_h):
        w_ih, w_hh, Z, Hs, S, XP = ctx.saved_tensors
        grid = ctx.grid
        T, H = Z.shape[0], w_hh.shape[0]
        inputs = _InputSide(ctx, grid, XP, w_ih, T)
        (Zx, Zr), (Hx, Hr), (Sx, Sr) = grid.sides(Z), grid.sides(Hs), grid.sides(S)
        mo = grid.grid(g_out, (T, H), w_hh)
        mh = grid.grid(g_h, (H,), w_hh).clone()
        for t in range(T - 1, -1, -1):
            mh = mh + mo[:, :, t]
            m_z = mh * secant_stored(Zx[t], Zr[t], Hx[t], Hr[t], Sx[t], Sr[t])
            inputs.step(t, m_z)
            mh = torch.matmul(m_z, w_hh)
        return inputs.grad(), grid.flat(mh), None, None, None, None, None, None, None


class _ExplicitRNN(nn.Module):
    """Shared driver: layers x directions, batch_first either way, initial states."""

    def __init__(self, rnn: nn.RNNBase, pairing: Pairing | None, rule: ProductRule):
        super().__init__()
        if getattr(rnn, "proj_size", 0):
            raise NotImplementedError(f"{type(rnn).__name__} with proj_size={rnn.proj_size} is not supported")
        self.rnn, self.pairing, self.rule = rnn, pairing, rule

    def __getattr__(self, name):
        # The user's code may read hidden_size, bidirectional, ... off its LSTM: keep answering.
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["rnn"], name)

    def _weights(self, layer: int, reverse: bool):
        sfx = f"_l{layer}" + ("_reverse" if reverse else "")
        r = self.rnn
        w_ih, w_hh = getattr(r, "weight_ih" + sfx), getattr(r, "weight_hh" + sfx)
        if r.bias:
            return w_ih, w_hh, getattr(r, "bias_ih" + sfx), getattr(r, "bias_hh" + sfx)
        z = w_ih.new_zeros(w_ih.shape[0])
        return w_ih, w_hh, z, z

    def forward(self, x, hx=None):
        if isinstance(x, nn.utils.rnn.PackedSequence):
            raise NotImplementedError("packed sequences are not supported by the explainer; pad instead")
        r = self.rnn
        lstm = isinstance(r, nn.LSTM)
        elman = type(r) is nn.RNN
        unbatched = x.dim() == 2
        if unbatched:
            x = x.unsqueeze(1 if not r.batch_first else 0)
        if not r.batch_first:
            x = x.transpose(0, 1)
        B, D, H = x.shape[0], 2 if r.bidirectional else 1, r.hidden_size
        if hx is None:
            zeros = x.new_zeros(r.num_layers * D, B, H)
            hx = (zeros, zeros) if lstm else zeros
        h0, c0 = hx if lstm else (hx, hx)  # a GRU has no cell state; c0 is never read for it
        hs: list[torch.Tensor] = []
        cs: list[torch.Tensor] = []
        inp = x
        for layer in range(r.num_layers):
            outs = []
            for d in range(D):
                w_ih, w_hh, b_ih, b_hh = self._weights(layer, d == 1)
                seq = inp.flip(1) if d else inp
                idx = layer * D + d
                sink = self.pairing.tokens if self.pairing is not None else None
                leaf = inp if layer == 0 and sink is not None and sink.owns(inp) else None
                if lstm:
                    out, h, c = _LSTMLayer.apply(
                        seq, h0[idx], c0[idx], w_ih, w_hh, b_ih + b_hh, self.pairing, self.rule, leaf, d == 1
                    )
                    cs.append(c)
                elif elman:
                    out, h = _RNNLayer.apply(
                        seq, h0[idx], w_ih, w_hh, b_ih + b_hh, r.nonlinearity == "relu", self.pairing, leaf, d == 1
                    )
                else:
                    out, h = _GRULayer.apply(
                        seq, h0[idx], w_ih, w_hh, b_ih, b_hh, self.pairing, self.rule, leaf, d == 1
                    )
                outs.append(out.flip(1) if d else out)
                hs.append(h)
            inp = torch.cat(outs, -1) if D == 2 else outs[0]
        out = inp if r.batch_first else inp.transpose(0, 1)
        h_n = torch.stack(hs)
        if unbatched:
            out, h_n = out.squeeze(0 if r.batch_first else 1), h_n.squeeze(1)
        if lstm:
            c_n = torch.stack(cs)
            return out, (h_n, c_n.squeeze(1) if unbatched else c_n)
        return out, h_n
