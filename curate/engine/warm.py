"""One-time library set-up that a pool's workers inherit instead of each paying it: imported only by the
pool's fork server (curate.engine.executor preloads it), whose forked workers start with it done.

- OpenCV builds its CIELAB conversion tables on the first colour conversion to Lab: ~40 ms, in every
  worker of every dedupe run (the hashing pass's mean colour, the thumbnails' colour test).
"""

import cv2
import numpy as np

cv2.setNumThreads(1)  # as every worker has it (executor._init_worker): no OpenCV thread pool to fork
cv2.cvtColor(np.zeros((1, 1, 3), np.uint8), cv2.COLOR_BGR2LAB)
