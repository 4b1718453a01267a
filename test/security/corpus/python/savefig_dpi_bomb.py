# expect: contained
# savefig.dpi far above fig.dpi: the figure is refused before rendering (a note), not returned past the pixel cap.
import matplotlib.pyplot as plt
plt.rcParams["savefig.dpi"] = 2000
plt.plot([1, 2])
plt.show()
plt.rcParams["savefig.dpi"] = "figure"
