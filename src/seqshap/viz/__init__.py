"""Pictures of explanations: self-contained HTML/SVG (:mod:`.html`), matplotlib PNG/SVG
(:mod:`.plots`) and coloured terminal text (:mod:`.terminal`), all drawing what :mod:`.layout`
computes once (the text as shown, colours, force-plot geometry); word-importance tables and
their files in :mod:`.importance`."""

from .html import explanation_html, force_plot_svg, highlight_html, standalone_page, top_words_html

__all__ = ["explanation_html", "force_plot_svg", "highlight_html", "standalone_page", "top_words_html"]
