// The library: the owner's videos, newest first (GET /v1/videos, paged).

import { api } from "./api.js";
import { pagedGrid } from "./grid.js";

pagedGrid((page) => api.list(page));
