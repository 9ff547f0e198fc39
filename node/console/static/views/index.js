// The console's views, in the order the navigation shows them. `admin: true` views are
// offered to admins only. A view module: `export default function View({ session })`.
export const VIEWS = [
  { id: "mesh", title: "Mesh", load: () => import("./mesh.js"), admin: true },
];
