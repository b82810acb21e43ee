// The gallery: published videos, most recently published first (GET /v1/gallery, paged).

import { api } from "./api.js";
import { pagedGrid } from "./grid.js";

pagedGrid((page) => api.gallery(page));
