! e3relax inside an MPI code, in Fortran (the mpi_f08 module): the two ways
! a parallel code uses it, as examples/mpi/relax_mpi.c.
!
!   mpirun -np N relax_mpi_fortran MODEL_DIR INPUT
!
! 1. Rank 0 loads the model and predicts; the result is broadcast.
! 2. Every rank loads its own handle (one libtorch thread each: ranks that
!    share a node must not each start one thread per core) and predicts
!    its own structure: the input shifted rigidly by 0.1 x rank of its first
!    lattice vector, whose prediction is rank 0's shifted by 0.1 x rank of
!    the *predicted* first lattice vector (a prediction keeps the mean
!    fractional coordinate).
! Rank 0 prints the prediction as examples/fortran/relax.f90 does, then one
! line per rank with its largest difference from the shifted result.
program relax_mpi
    use, intrinsic :: iso_c_binding, only: c_double
    use mpi_f08
    use e3relax
    implicit none
    character(len=4096) :: model_dir, input, comment
    character(len=1024) :: message
    type(e3relax_model) :: model
    real(c_double) :: lattice(3, 3), new_lattice(3, 3), own_lattice(3, 3)
    real(c_double), allocatable :: positions(:, :), relaxed(:, :), mine(:, :), own(:, :)
    real(c_double), allocatable :: differences(:)
    real(c_double) :: difference
    integer, allocatable :: numbers(:)
    integer :: natoms, i, ierr, u, rank, nranks

    call MPI_Init()
    call MPI_Comm_rank(MPI_COMM_WORLD, rank)
    call MPI_Comm_size(MPI_COMM_WORLD, nranks)
    if (command_argument_count() < 2) then
        if (rank == 0) write (0, '(a)') 'usage: relax_mpi_fortran MODEL_DIR INPUT'
        call MPI_Abort(MPI_COMM_WORLD, 2)
    end if
    call get_command_argument(1, model_dir)
    call get_command_argument(2, input)
    call e3relax_set_num_threads(1, ierr=ierr)
    if (ierr /= E3RELAX_SUCCESS) call fail('e3relax_set_num_threads')

    natoms = 0
    if (rank == 0) then
        open (newunit=u, file=trim(input), status='old', action='read', iostat=ierr)
        if (ierr /= 0) then
            write (0, '(a)') 'cannot open '//trim(input)
            call MPI_Abort(MPI_COMM_WORLD, 1)
        end if
        read (u, '(a)') comment
        do i = 1, 3
            read (u, *) lattice(:, i)
        end do
        read (u, *) natoms
        allocate (numbers(natoms), positions(3, natoms), relaxed(3, natoms))
        do i = 1, natoms
            read (u, *) numbers(i), positions(:, i)
        end do
        close (u)
        call e3relax_load(model, trim(model_dir), ierr=ierr)
        if (ierr /= E3RELAX_SUCCESS) call fail('e3relax_load')
        call e3relax_predict(model, natoms, numbers, positions, lattice, relaxed, new_lattice, ierr)
        if (ierr /= E3RELAX_SUCCESS) call fail('e3relax_predict')
        call e3relax_free(model)
    end if

    ! 1. Everyone gets rank 0's input and prediction.
    call MPI_Bcast(natoms, 1, MPI_INTEGER, 0, MPI_COMM_WORLD)
    if (rank /= 0) allocate (numbers(natoms), positions(3, natoms), relaxed(3, natoms))
    call MPI_Bcast(numbers, natoms, MPI_INTEGER, 0, MPI_COMM_WORLD)
    call MPI_Bcast(positions, 3*natoms, MPI_DOUBLE_PRECISION, 0, MPI_COMM_WORLD)
    call MPI_Bcast(lattice, 9, MPI_DOUBLE_PRECISION, 0, MPI_COMM_WORLD)
    call MPI_Bcast(relaxed, 3*natoms, MPI_DOUBLE_PRECISION, 0, MPI_COMM_WORLD)
    call MPI_Bcast(new_lattice, 9, MPI_DOUBLE_PRECISION, 0, MPI_COMM_WORLD)

    ! 2. Every rank predicts its own structure with its own handle.
    allocate (mine(3, natoms), own(3, natoms), differences(nranks))
    do i = 1, natoms
        mine(:, i) = positions(:, i) + 0.1_c_double*rank*lattice(:, 1)
    end do
    call e3relax_load(model, trim(model_dir), ierr=ierr)
    if (ierr /= E3RELAX_SUCCESS) call fail('e3relax_load')
    call e3relax_predict(model, natoms, numbers, mine, lattice, own, own_lattice, ierr)
    if (ierr /= E3RELAX_SUCCESS) call fail('e3relax_predict')
    call e3relax_free(model)
    do i = 1, natoms
        own(:, i) = own(:, i) - 0.1_c_double*rank*new_lattice(:, 1)
    end do
    difference = max(maxval(abs(own - relaxed)), maxval(abs(own_lattice - new_lattice)))
    call MPI_Gather(difference, 1, MPI_DOUBLE_PRECISION, differences, 1, MPI_DOUBLE_PRECISION, 0, MPI_COMM_WORLD)

    if (rank == 0) then
        write (*, '(a)') 'relaxed by e3relax (angstrom)'
        do i = 1, 3
            write (*, '(3es25.17)') new_lattice(:, i)
        end do
        write (*, '(i0)') natoms
        do i = 1, natoms
            write (*, '(i0,3es25.17)') numbers(i), relaxed(:, i)
        end do
        do i = 1, nranks
            write (*, '(a,i0,a,i0,a,es10.3)') 'rank ', i - 1, ' of ', nranks, ': largest difference ', differences(i)
        end do
    end if
    call MPI_Finalize()

contains

    subroutine fail(what)
        character(len=*), intent(in) :: what
        call e3relax_last_error(message)
        write (0, '(a)') what//': '//trim(message)
        call MPI_Abort(MPI_COMM_WORLD, 1)
    end subroutine fail
end program relax_mpi
