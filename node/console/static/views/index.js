// The console's views, in the order the navigation shows them. `admin: true` views are
// offered to admins only. A view module: `export default function View({ session })`.
export const VIEWS = [
  { id: "mesh", title: "Mesh", load: () => import("./mesh.js"), admin: true },
  { id: "workers", title: "Workers", load: () => import("./workers.js"), admin: true },
  { id: "models", title: "Models", load: () => import("./models.js"), admin: false },
  { id: "tenants", title: "Tenants and keys", load: () => import("./tenants.js"), admin: false },
  { id: "traffic", title: "Traffic", load: () => import("./traffic.js"), admin: true },
  { id: "activity", title: "Activity", load: () => import("./activity.js"), admin: false },
];
